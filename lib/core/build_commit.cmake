# Writes OUT (build_commit.h) with the source tree's `git describe`, run at every build by
# the mnistctl_build_commit target (lib/core/CMakeLists.txt), so `mnistctl --version` names
# the commit that was built, not the one CMake was configured at. The file is rewritten only
# when the text changes, so an unchanged commit recompiles nothing.
set(_commit unknown)
if(GIT)
  execute_process(COMMAND ${GIT} describe --always --dirty --abbrev=12
                  WORKING_DIRECTORY ${SRC}
                  OUTPUT_VARIABLE _out OUTPUT_STRIP_TRAILING_WHITESPACE
                  RESULT_VARIABLE _rc ERROR_QUIET)
  if(_rc EQUAL 0 AND _out)
    set(_commit ${_out})
  endif()
endif()
set(_text "#define MNISTCTL_BUILD_COMMIT \"${_commit}\"\n")
set(_old "")
if(EXISTS ${OUT})
  file(READ ${OUT} _old)
endif()
if(NOT _old STREQUAL _text)
  file(WRITE ${OUT} "${_text}")
endif()
