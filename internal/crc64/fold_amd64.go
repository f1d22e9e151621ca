package crc64

import "golang.org/x/sys/cpu"

// canFold is whether this CPU multiplies without carries (PCLMULQDQ).
var canFold = cpu.X86.HasPCLMULQDQ

// fold folds p into a 128-bit remainder (see Update). len(p) is a
// multiple of 16 and at least foldMin; k is foldKeys.
//
//go:noescape
func fold(crc uint64, p []byte, k *[4]uint64) (lo, hi uint64)
