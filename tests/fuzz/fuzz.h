/* fuzz.h - what every libFuzzer harness here shares. */
#ifndef MERIDIAN_FUZZ_H
#define MERIDIAN_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken contract is a crash libFuzzer reports with its input. */
#define CHECK(x)                                                               \
	do {                                                                   \
		if (!(x))                                                      \
			__builtin_trap();                                      \
	} while (0)

#endif
