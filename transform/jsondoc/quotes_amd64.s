//go:build !purego

#include "textflag.h"

// func scanQuotes(s string, mask []uint64)
TEXT ·scanQuotes(SB), NOSPLIT, $0-40
	MOVQ s_base+0(FP), SI
	MOVQ s_len+8(FP), CX
	MOVQ mask_base+16(FP), DI
	SHRQ $6, CX
	JEQ done
	// X0: 16 quotes, X1: 16 backslashes.
	MOVQ $0x2222222222222222, AX
	MOVQ AX, X0
	PUNPCKLQDQ X0, X0
	MOVQ $0x5c5c5c5c5c5c5c5c, AX
	MOVQ AX, X1
	PUNPCKLQDQ X1, X1

block:
	// Each 16 bytes: compare with both, merge, one bit per byte.
	MOVOU 0(SI), X2
	MOVO X2, X3
	PCMPEQB X0, X2
	PCMPEQB X1, X3
	POR X3, X2
	PMOVMSKB X2, AX
	MOVOU 16(SI), X4
	MOVO X4, X5
	PCMPEQB X0, X4
	PCMPEQB X1, X5
	POR X5, X4
	PMOVMSKB X4, BX
	SHLQ $16, BX
	ORQ BX, AX
	MOVOU 32(SI), X2
	MOVO X2, X3
	PCMPEQB X0, X2
	PCMPEQB X1, X3
	POR X3, X2
	PMOVMSKB X2, BX
	SHLQ $32, BX
	ORQ BX, AX
	MOVOU 48(SI), X4
	MOVO X4, X5
	PCMPEQB X0, X4
	PCMPEQB X1, X5
	POR X5, X4
	PMOVMSKB X4, BX
	SHLQ $48, BX
	ORQ BX, AX
	MOVQ AX, 0(DI)
	ADDQ $64, SI
	ADDQ $8, DI
	DECQ CX
	JNZ block

done:
	RET
