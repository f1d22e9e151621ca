//go:build !amd64

package crc64

const canFold = false

func fold(crc uint64, p []byte, k *[4]uint64) (lo, hi uint64) { panic("crc64: fold without PCLMULQDQ") }
