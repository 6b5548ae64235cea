# The C example on the generated frames: it runs every file, prints FPS and writes one class map
# (PGM, the engine's output size) per frame.
file(REMOVE_RECURSE ${OUT})
# CAMERAS=2: the frames as two cameras, a pair per srt_engine_run_batch call (7 frames: the last
# batch is partial); the class maps must be the same files as one camera's.
if(NOT DEFINED CAMERAS)
  set(CAMERAS 1)
endif()
execute_process(COMMAND ${EXAMPLE} --size 640x360 --cameras ${CAMERAS} --out ${OUT} ${ENGINE} ${FRAMES}
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message(STATUS "${out}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "srt_segment failed (${rc}): ${err}")
endif()
if(NOT out MATCHES "7 frames in [0-9.]+ s: [0-9.]+ FPS")
  message(FATAL_ERROR "srt_segment did not report 7 frames and FPS")
endif()
file(GLOB maps ${OUT}/*.pgm)
list(LENGTH maps count)
if(NOT count EQUAL 7)
  message(FATAL_ERROR "expected 7 class maps, found ${count}")
endif()
file(READ ${OUT}/scene_00.ppm.pgm head LIMIT 16)
if(NOT head MATCHES "^P5\n256 128\n255\n")
  message(FATAL_ERROR "class map header is not a 256x128 PGM: ${head}")
endif()
