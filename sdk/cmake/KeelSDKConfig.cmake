# find_package(KeelSDK): the keel plugin SDK (C ABI header, C++ helpers, keel_add_plugin()).
# Installed to <prefix>/lib/cmake/KeelSDK/; the headers are in <prefix>/include/keel/.
get_filename_component(_keel_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
if(NOT TARGET KeelSDK::sdk)
  add_library(KeelSDK::sdk INTERFACE IMPORTED)
  set_target_properties(KeelSDK::sdk PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${_keel_prefix}/include")
endif()
set(KeelSDK_PLUGIN_DIR "${_keel_prefix}/lib/keel/plugins")
set(KeelSDK_KEEL_EXECUTABLE "${_keel_prefix}/bin/keel")
include("${CMAKE_CURRENT_LIST_DIR}/KeelPlugin.cmake")
unset(_keel_prefix)
