// Linked into every executable of a MUSIQ_SANITIZE build (root CMakeLists.txt): the
// sanitizers' default options, read before $ASAN_OPTIONS / $UBSAN_OPTIONS (which still
// override them). A report aborts the process (SIGABRT) instead of exiting with status 1,
// so it can never pass for the "some images failed" exit status that the CLI tests
// expect. No leak or UB suppressions are needed: the suite runs clean with OpenBLAS,
// libgomp, libhdf5, libjpeg and stb as they are.
extern "C" const char* __asan_default_options() {
  return "abort_on_error=1:detect_leaks=1:strict_string_checks=1:"
         "detect_stack_use_after_return=1:check_initialization_order=1";
}

extern "C" const char* __ubsan_default_options() {
  return "abort_on_error=1:print_stacktrace=1";
}
