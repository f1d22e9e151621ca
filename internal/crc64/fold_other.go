//go:build !amd64

package crc64

const canFold = false

// fold is never called here (canFold is false); a wrong CRC would be worse
// than the panic, should that ever change.
func fold(crc uint64, p []byte, k *[4]uint64) (lo, hi uint64) { panic("crc64: fold without PCLMULQDQ") }
