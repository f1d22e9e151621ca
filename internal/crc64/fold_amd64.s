#include "textflag.h"

// func fold(crc uint64, p []byte, k *[4]uint64) (lo, hi uint64)
//
// Four 16-byte lanes fold 64 bytes a step, so four carry-less multiplies
// overlap instead of waiting on each other; the lanes then fold into one,
// and the blocks left over fold one at a time. Each fold is
// lo64(X)*k[even] ^ hi64(X)*k[odd] ^ next block (see foldKeys).
TEXT ·fold(SB), NOSPLIT, $0-56
	MOVQ crc+0(FP), AX
	MOVQ p_base+8(FP), SI
	MOVQ p_len+16(FP), CX
	MOVQ k+32(FP), DX

	MOVOU 0(SI), X0
	MOVOU 16(SI), X1
	MOVOU 32(SI), X2
	MOVOU 48(SI), X3
	MOVQ  AX, X4
	PXOR  X4, X0
	ADDQ  $64, SI
	SUBQ  $64, CX
	MOVOU 0(DX), X5

four:
	CMPQ CX, $64
	JB   one
	MOVO X0, X8
	MOVO X1, X9
	MOVO X2, X10
	MOVO X3, X11
	PCLMULQDQ $0x00, X5, X0
	PCLMULQDQ $0x00, X5, X1
	PCLMULQDQ $0x00, X5, X2
	PCLMULQDQ $0x00, X5, X3
	PCLMULQDQ $0x11, X5, X8
	PCLMULQDQ $0x11, X5, X9
	PCLMULQDQ $0x11, X5, X10
	PCLMULQDQ $0x11, X5, X11
	MOVOU 0(SI), X12
	MOVOU 16(SI), X13
	MOVOU 32(SI), X14
	MOVOU 48(SI), X6
	PXOR X8, X0
	PXOR X9, X1
	PXOR X10, X2
	PXOR X11, X3
	PXOR X12, X0
	PXOR X13, X1
	PXOR X14, X2
	PXOR X6, X3
	ADDQ $64, SI
	SUBQ $64, CX
	JMP  four

one:
	MOVOU 16(DX), X5

	MOVO X0, X8
	PCLMULQDQ $0x00, X5, X0
	PCLMULQDQ $0x11, X5, X8
	PXOR X8, X0
	PXOR X0, X1

	MOVO X1, X8
	PCLMULQDQ $0x00, X5, X1
	PCLMULQDQ $0x11, X5, X8
	PXOR X8, X1
	PXOR X1, X2

	MOVO X2, X8
	PCLMULQDQ $0x00, X5, X2
	PCLMULQDQ $0x11, X5, X8
	PXOR X8, X2
	PXOR X2, X3

rest:
	CMPQ CX, $16
	JB   done
	MOVO X3, X8
	PCLMULQDQ $0x00, X5, X3
	PCLMULQDQ $0x11, X5, X8
	MOVOU 0(SI), X12
	PXOR X8, X3
	PXOR X12, X3
	ADDQ $16, SI
	SUBQ $16, CX
	JMP  rest

done:
	MOVQ   X3, AX
	PSRLDQ $8, X3
	MOVQ   X3, BX
	MOVQ   AX, lo+40(FP)
	MOVQ   BX, hi+48(FP)
	RET
