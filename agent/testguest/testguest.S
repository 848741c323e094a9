/* nubo-agent test guest: a tiny PVH ELF (32-bit code, no paging) for the agent's tests and
 * benchmark until/besides guest/hello. It echoes its command line, prints NUBO_READY on COM1,
 * then acts on one word of the command line: "testexit=<d>" prints NUBO_EXIT <d> and resets,
 * "testcrash" prints NUBO_CRASH and resets (on_reboot=destroy ends the domain), else it halts. */

#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define COM1 0x3f8

	.section .note.Xen, "a", @note
	.balign 4
	.long 2f - 1f
	.long 4f - 3f
	.long XEN_ELFNOTE_PHYS32_ENTRY
1:	.asciz "Xen"
2:	.balign 4
3:	.quad tg_start
4:	.balign 4

	.section .text, "ax"
	.code32
	.globl tg_start
tg_start:
	cli
	cld
	mov $stack_top, %esp
	mov 24(%ebx), %ebp		/* hvm_start_info.cmdline_paddr (low 32 bits) */

	mov $msg_cmd, %esi
	call puts
	test %ebp, %ebp
	jz 1f
	mov %ebp, %esi
	call puts
1:	mov $msg_nl, %esi
	call puts
	mov $msg_ready, %esi
	call puts

	test %ebp, %ebp
	jz halt
	mov $w_exit, %edi
	call find			/* eax = address after the word, or 0 */
	test %eax, %eax
	jz 2f
	movzbl (%eax), %ecx
	mov %cl, exit_digit
	mov $msg_exit, %esi
	call puts
	jmp reset
2:	mov $w_crash, %edi
	call find
	test %eax, %eax
	jz halt
	mov $msg_crash, %esi
	call puts
	jmp reset

halt:	hlt
	jmp halt

	/* Triple fault: an empty IDT and an interrupt. qemu runs with -no-reboot, so it exits. */
reset:	lidt idt_null
	int3
	jmp halt

	/* puts: print the NUL-terminated string at %esi on COM1. */
puts:	mov $COM1, %dx
3:	lodsb
	test %al, %al
	jz 4f
	out %al, %dx
	jmp 3b
4:	ret

	/* find: look for the NUL-terminated word at %edi in the string at %ebp. */
find:	mov %ebp, %ebx
5:	cmpb $0, (%ebx)
	je 8f
	mov %ebx, %esi
	mov %edi, %edx
6:	movb (%edx), %al
	test %al, %al
	jz 7f
	cmpb (%esi), %al
	jne 9f
	inc %esi
	inc %edx
	jmp 6b
7:	mov %esi, %eax
	ret
9:	inc %ebx
	jmp 5b
8:	xor %eax, %eax
	ret

	.section .data
msg_cmd:	.asciz "testguest cmdline: "
msg_nl:		.asciz "\n"
msg_ready:	.asciz "NUBO_READY\n"
msg_exit:	.ascii "NUBO_EXIT "
exit_digit:	.asciz "0\n"
msg_crash:	.asciz "NUBO_CRASH testcrash requested\n"
w_exit:		.asciz "testexit="
w_crash:	.asciz "testcrash"
	.balign 8
idt_null:	.word 0
		.long 0

	.section .bss
	.balign 16
	.space 4096
stack_top:
