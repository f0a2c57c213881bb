# keel_add_plugin(NAME SOURCES...): builds one keel plugin as a shared library that exports exactly
# one dynamic symbol, keel_plugin_entry (hidden visibility plus a linker version script), and that
# links nothing of the host. Used in-tree and by third parties through find_package(KeelSDK).
set(KEEL_SDK_CMAKE_DIR "${CMAKE_CURRENT_LIST_DIR}" CACHE INTERNAL "")

function(keel_add_plugin name)
  if(NOT ARGN)
    message(FATAL_ERROR "keel_add_plugin(${name}): no sources given")
  endif()
  add_library(${name} MODULE ${ARGN})
  target_link_libraries(${name} PRIVATE KeelSDK::sdk)
  target_compile_features(${name} PRIVATE cxx_std_20)
  set_target_properties(${name} PROPERTIES
    PREFIX ""                      # the file is <name>.so: the plugin name, nothing else
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    POSITION_INDEPENDENT_CODE ON)
  target_link_options(${name} PRIVATE
    "LINKER:--version-script=${KEEL_SDK_CMAKE_DIR}/keel_plugin.map"
    "LINKER:--no-undefined"          # a plugin must not expect symbols from the host
    "-static-libstdc++" "-static-libgcc")  # so next year's host's libstdc++ never matters
  set_property(TARGET ${name} APPEND PROPERTY LINK_DEPENDS "${KEEL_SDK_CMAKE_DIR}/keel_plugin.map")
endfunction()
