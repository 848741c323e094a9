/* nubo slot firmware: the whole "BIOS" of a warm slot (agent/slots.c). A slot is launched and
 * left paused before its first instruction, so nothing of the guest is known yet; when an
 * instance takes the slot the agent writes the guest's PVH kernel, its hvm_start_info and a
 * mailbox into guest RAM, then resumes it. This code runs from the reset vector: enter flat
 * 32-bit protected mode and jump to the kernel's PVH entry with %ebx = start_info, as a PVH
 * loader would. Nothing else ever writes guest RAM, so the agent's layout cannot be clobbered.
 * Without a valid mailbox it says so on COM1 and halts. Layout: agent/slots.h. */

#define MAILBOX 0x7000		/* SLOT_MAILBOX_PADDR */
#define MAGIC_LO 0x4f42554e	/* "NUBOSLT0" little endian, SLOT_MAILBOX_MAGIC */
#define MAGIC_HI 0x30544c53
#define COM1 0x3f8
#define BASE 0xffff0000		/* where the 64 KiB image sits: its end is the reset vector */

	.section .text, "ax"
	.code16
start16:
	cli
	cld
	lgdtl %cs:gdt_desc
	mov %cr0, %eax
	or $1, %eax
	mov %eax, %cr0
	ljmpl $0x08, $(BASE + start32)

	.code32
start32:
	mov $0x10, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %ss
	mov %ax, %fs
	mov %ax, %gs
	cmpl $MAGIC_LO, MAILBOX
	jne nobox
	cmpl $MAGIC_HI, MAILBOX + 4
	jne nobox
	mov MAILBOX + 12, %ebx		/* start_info paddr */
	mov MAILBOX + 8, %eax		/* PVH entry */
	xor %ecx, %ecx
	xor %edx, %edx
	xor %esi, %esi
	xor %edi, %edi
	xor %ebp, %ebp
	xor %esp, %esp
	jmp *%eax

nobox:	mov $(BASE + msg), %esi
	mov $COM1, %dx
1:	lodsb
	test %al, %al
	jz 2f
	out %al, %dx
	jmp 1b
2:	hlt
	jmp 2b

msg:	.asciz "nubo slot firmware: no mailbox, halting\n"

	.balign 8
gdt:	.quad 0
	.quad 0x00cf9a000000ffff	/* 0x08: flat 32-bit code */
	.quad 0x00cf92000000ffff	/* 0x10: flat 32-bit data */
gdt_desc:
	.word gdt_desc - gdt - 1
	.long BASE + gdt

	.section .reset, "ax"
	.code16
reset:	jmp start16
	.balign 16, 0xf4
