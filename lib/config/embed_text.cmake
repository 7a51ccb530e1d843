# Script mode (cmake -P): writes OUTPUT from TEMPLATE with the text of INPUT in @EMBED_TEXT@,
# for a C++ raw string literal R"mnistctl_embed(...)mnistctl_embed". Runs at build time,
# so editing the input file rebuilds the binary (see lib/config/CMakeLists.txt).
foreach(var INPUT TEMPLATE OUTPUT)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "embed_text.cmake: -D${var}=... is required")
  endif()
endforeach()
file(READ "${INPUT}" EMBED_TEXT)
string(FIND "${EMBED_TEXT}" ")mnistctl_embed\"" _found)
if(NOT _found EQUAL -1)
  message(FATAL_ERROR "${INPUT} contains the raw-string delimiter )mnistctl_embed\"")
endif()
configure_file("${TEMPLATE}" "${OUTPUT}" @ONLY)
# configure_file keeps an unchanged output untouched; touch it so the build step is done.
file(TOUCH "${OUTPUT}")
