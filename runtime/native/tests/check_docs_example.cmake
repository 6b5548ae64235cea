# docs/native.md prints examples/hello_swiftrt.c in full (the newcomer path compiles and runs it,
# and the relocated-install test runs the file): the page and the file must not drift apart.
#   cmake -DDOC=<docs/native.md> -DFILE=<examples/hello_swiftrt.c> -P check_docs_example.cmake
file(READ ${DOC} doc)
file(READ ${FILE} code)
string(FIND "${doc}" "```c\n${code}```\n" at)
if(at EQUAL -1)
  message(FATAL_ERROR "${DOC} does not print ${FILE} as it is (a ```c block with the whole file): update the page")
endif()
message(STATUS "${DOC} prints ${FILE} as it is")
