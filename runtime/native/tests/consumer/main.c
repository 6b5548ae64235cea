/* Links against the installed library and prints its version line. */
#include <stdio.h>
#include <swiftrt.h>

int main(void) {
  printf("%s\n", srt_version());
  return srt_abi_version() == SRT_ABI_VERSION ? 0 : 1;
}
