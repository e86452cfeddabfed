package main

// #include <stdlib.h>
// #include "native.h"
import "C"

import (
	"fmt"
	"hash/crc32"
	"unsafe"
)

// checkNative calls the C code and checks its answer against Go's own:
// "UP (C on x86_64)" when they agree.
func checkNative() string {
	const probe = "shipit"
	data := C.CString(probe)
	defer C.free(unsafe.Pointer(data))
	got := uint32(C.native_crc32((*C.uchar)(unsafe.Pointer(data)), C.size_t(len(probe))))
	arch := C.GoString(C.native_arch())
	if want := crc32.ChecksumIEEE([]byte(probe)); got != want {
		return fmt.Sprintf("DOWN: C on %s computed crc32 %08x, want %08x", arch, got, want)
	}
	return "UP (C on " + arch + ")"
}
