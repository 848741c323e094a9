/* hello: PVH entry point. qemu (microvm, pc, q35) finds the 32-bit entry through the Xen
 * PHYS32_ENTRY ELF note, enters in flat 32-bit protected mode with paging off and %ebx pointing
 * at the hvm_start_info; we identity-map the first 4 GiB, enter long mode and call guest_main. */

#define XEN_ELFNOTE_PHYS32_ENTRY 18

	.section .note.Xen, "a", @note
	.balign 4
	.long 2f - 1f		/* namesz */
	.long 4f - 3f		/* descsz */
	.long XEN_ELFNOTE_PHYS32_ENTRY
1:	.asciz "Xen"
2:	.balign 4
3:	.quad pvh_start32	/* qemu reads a host size_t here */
4:	.balign 4

	.section .text.entry, "ax"
	.code32
	.globl pvh_start32
pvh_start32:
	cli
	cld
	mov %ebx, %esi			/* start_info physical address, kept for guest_main */
	mov $boot_stack_top, %esp

	/* PD entries: 2048 x 2 MiB pages = 0..4 GiB, present|writable|huge. */
	mov $boot_pd, %edi
	mov $0x83, %eax
	mov $2048, %ecx
1:	mov %eax, (%edi)
	movl $0, 4(%edi)
	add $0x200000, %eax
	add $8, %edi
	loop 1b

	/* PDPT: 4 entries, one per page directory. */
	mov $boot_pdpt, %edi
	mov $boot_pd + 3, %eax
	mov $4, %ecx
2:	mov %eax, (%edi)
	movl $0, 4(%edi)
	add $4096, %eax
	add $8, %edi
	loop 2b

	mov $boot_pml4, %edi
	movl $boot_pdpt + 3, (%edi)
	movl $0, 4(%edi)

	mov %cr4, %eax
	or $(1 << 5), %eax		/* PAE */
	mov %eax, %cr4
	mov $boot_pml4, %eax
	mov %eax, %cr3
	mov $0xc0000080, %ecx		/* EFER */
	rdmsr
	or $(1 << 8), %eax		/* LME */
	wrmsr
	mov %cr0, %eax
	or $0x80000001, %eax		/* PG | PE */
	mov %eax, %cr0

	lgdt boot_gdt_desc
	ljmp $0x08, $long_entry

	.code64
long_entry:
	mov $0x10, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %ss
	xor %ax, %ax
	mov %ax, %fs
	mov %ax, %gs
	mov $boot_stack_top, %rsp
	mov %esi, %edi			/* guest_main(start_info_paddr) */
	call guest_main
3:	cli
	hlt
	jmp 3b

/* Exception stubs, 16 bytes apart so the IDT can be filled by arithmetic: each passes its
 * vector number to guest_crash, which reports and triple-faults (never returns). */
	.balign 16
	.globl guest_exc_stubs
guest_exc_stubs:
	.set vec, 0
	.rept 32
	.balign 16
	mov $vec, %edi
	jmp exc_common
	.set vec, vec + 1
	.endr
exc_common:
	and $-16, %rsp
	call guest_crash
4:	cli
	hlt
	jmp 4b

/* LAPIC timer tick (vector 32) and spurious vector (255): the timer only wakes the idle
 * loop's hlt; acknowledge it and return. */
	.globl guest_timer_isr
guest_timer_isr:
	push %rax
	mov $0xfee000b0, %eax		/* LAPIC EOI (zero-extended: above 2 GiB) */
	movl $0, (%rax)
	pop %rax
	iretq
	.globl guest_spurious_isr
guest_spurious_isr:
	iretq

	.section .rodata
	.balign 8
boot_gdt:
	.quad 0				/* null */
	.quad 0x00af9a000000ffff	/* 0x08: 64-bit code */
	.quad 0x00cf92000000ffff	/* 0x10: data */
boot_gdt_end:
boot_gdt_desc:
	.word boot_gdt_end - boot_gdt - 1
	.long boot_gdt

	.section .bss
	.balign 4096
boot_pml4:	.skip 4096
boot_pdpt:	.skip 4096
boot_pd:	.skip 4096 * 4
boot_stack:	.skip 65536
boot_stack_top:
