# Included from the top-level CMakeLists.txt when tests are built (any compiler, no libFuzzer): one replay
# driver per fuzz target (fuzz/replay_main.cpp linked with the target's LLVMFuzzerTestOneInput) and one ctest
# per target running it over fuzz/reproducers/<target>/ and fuzz/seeds/<target>/. Reproducers of bugs still
# open are listed in fuzz/reproducers/open-bugs.txt and skipped (CSPINE_REPLAY_ALL=1 runs them too).
set(_cspine_fuzz_dir ${CMAKE_CURRENT_LIST_DIR})
add_library(cspine_replay_common STATIC ${_cspine_fuzz_dir}/fuzz_common.cpp)
target_include_directories(cspine_replay_common PUBLIC ${_cspine_fuzz_dir} ${PROJECT_SOURCE_DIR}/src)
target_compile_options(cspine_replay_common PRIVATE ${_cspine_warnings})
target_link_libraries(cspine_replay_common PUBLIC cspine_core nlohmann_json::nlohmann_json)

foreach(t fuzz_dicom_index fuzz_pixel_decode fuzz_contract fuzz_csv)
  add_executable(replay_${t} ${_cspine_fuzz_dir}/${t}.cpp ${_cspine_fuzz_dir}/replay_main.cpp)
  target_compile_options(replay_${t} PRIVATE ${_cspine_warnings})
  target_link_libraries(replay_${t} PRIVATE cspine_replay_common)
  add_test(NAME fuzz_replay.${t}
           COMMAND replay_${t} --skip ${_cspine_fuzz_dir}/reproducers/open-bugs.txt
                   ${_cspine_fuzz_dir}/reproducers/${t} ${_cspine_fuzz_dir}/seeds/${t})
  set_tests_properties(fuzz_replay.${t} PROPERTIES TIMEOUT 120 LABELS fuzz-replay)
endforeach()
