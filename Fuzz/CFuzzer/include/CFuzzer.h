// libFuzzer's driver entry point (compiler-rt, linked by -sanitize=fuzzer). wc-fuzz calls it from its own
// main because SwiftPM links every executable's entry point under the module's name, so libFuzzer's main
// is not the one that runs. Declared only; nothing here is compiled into a normal build.
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
