#ifndef HELLO_CGO_NATIVE_H
#define HELLO_CGO_NATIVE_H

#include <stddef.h>
#include <stdint.h>

/* The CPU architecture this C code was compiled for. */
const char *native_arch(void);

/* CRC-32 (IEEE 802.3, as Go's hash/crc32.ChecksumIEEE) of len bytes at data. */
uint32_t native_crc32(const unsigned char *data, size_t len);

#endif
