// libFuzzer's driver, which clang's runtime (libclang_rt.fuzzer) exports for binaries that keep
// their own main (compiler-rt lib/fuzzer/FuzzerInterface.h). pgkeep-fuzz needs it because SwiftPM
// links every executable target with `--defsym main=<module>_main`, so libFuzzer's own main is
// never used. Declared here rather than with @_silgen_name: the callback is a C function pointer
// and the call must use the C calling convention. Only the fuzz build links the definition.
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
