# Runs COMMAND (a ;-list) and writes its stdout to OUTPUT, only when the command succeeds
# (a failed run leaves no half-written file). Used for the bash completion script.
execute_process(COMMAND ${COMMAND} OUTPUT_VARIABLE _out RESULT_VARIABLE _rc)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "${COMMAND} failed (${_rc})")
endif()
file(WRITE ${OUTPUT}.tmp "${_out}")
file(RENAME ${OUTPUT}.tmp ${OUTPUT})
