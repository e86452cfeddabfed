#include <stddef.h>
#include <stdint.h>

/* The CPU architecture this C code was compiled for. */
const char *native_arch(void) {
#if defined(__x86_64__)
    return "x86_64";
#elif defined(__aarch64__)
    return "aarch64";
#else
    return "unknown";
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
