#include <stddef.h>
#include <stdint.h>

/* The ELF machine this C code was compiled for (62: x86-64, 183: AArch64). */
int native_machine(void) {
#if defined(__x86_64__)
    return 62;
#elif defined(__aarch64__)
    return 183;
#else
    return 0;
#endif
}

/* 32-bit FNV-1a of len bytes at data. */
uint32_t native_fnv1a(const unsigned char *data, size_t len) {
    uint32_t hash = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        hash = (hash ^ data[i]) * 16777619u;
    }
    return hash;
}
