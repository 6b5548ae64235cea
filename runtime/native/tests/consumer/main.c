/* Links against the installed library, prints its version line and checks that it names the
   version its package (CMake or pkg-config) gave: one version story. */
#include <stdio.h>
#include <string.h>
#include <swiftrt.h>

int main(void) {
  const char *want = "swiftrt " EXPECTED_VERSION " (abi ";
  printf("%s\n", srt_version());
  if (strncmp(srt_version(), want, strlen(want)) != 0) {
    fprintf(stderr, "srt_version() is not '%s...'\n", want);
    return 1;
  }
  return srt_abi_version() == SRT_ABI_VERSION ? 0 : 1;
}
