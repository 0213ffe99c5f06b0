# What `cmake --install` (and `make install`) puts where, by GNUInstallDirs: the balancer in sbin, the
# programs in bin, libtether (shared with soname libtether.so.0, and static), its headers, a pkg-config
# file and a CMake package (find_package(Tether) -> Tether::tether), the man pages, the example
# configurations, the systemd units, a logrotate snippet and a default /etc/tether/tether.conf.
include(CMakePackageConfigHelpers)

install(TARGETS tether RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR})
install(TARGETS tether-app tether-lab RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS tether_shared EXPORT TetherTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} NAMELINK_COMPONENT dev
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS tether_static ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev)
install(DIRECTORY include/tether DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev)

# CMake package: Tether::tether is the shared library (the static one's dependencies are in libtether.pc).
set_target_properties(tether_shared PROPERTIES EXPORT_NAME tether)
set(TETHER_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/Tether)
install(EXPORT TetherTargets NAMESPACE Tether:: DESTINATION ${TETHER_CMAKEDIR} COMPONENT dev)
configure_package_config_file(cmake/TetherConfig.cmake.in ${CMAKE_BINARY_DIR}/TetherConfig.cmake
  INSTALL_DESTINATION ${TETHER_CMAKEDIR})
write_basic_package_version_file(${CMAKE_BINARY_DIR}/TetherConfigVersion.cmake COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_BINARY_DIR}/TetherConfig.cmake ${CMAKE_BINARY_DIR}/TetherConfigVersion.cmake
  DESTINATION ${TETHER_CMAKEDIR} COMPONENT dev)

# pkg-config: paths relative to ${prefix}, so that a DESTDIR copy works with PKG_CONFIG_SYSROOT_DIR.
configure_file(cmake/libtether.pc.in ${CMAKE_BINARY_DIR}/libtether.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/libtether.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT dev)

# Documentation: the example configurations.
install(FILES examples/tether.conf examples/demo.conf examples/seed-haproxy.conf examples/seed-ip-hash.conf
  examples/seed-nginx-plus.conf DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)

# The default configuration: installed once; an upgrade (or a second install) never overwrites it.
# The directory follows the prefix given at install time (--prefix), as GNUInstallDirs would: /usr -> /etc.
install(CODE "
  set(etc \"${CMAKE_INSTALL_SYSCONFDIR}\")
  if(NOT IS_ABSOLUTE \"\${etc}\")
    if(CMAKE_INSTALL_PREFIX STREQUAL \"/usr\")
      set(etc \"/\${etc}\")
    else()
      set(etc \"\${CMAKE_INSTALL_PREFIX}/\${etc}\")
    endif()
  endif()
  set(conf \"\$ENV{DESTDIR}\${etc}/tether/tether.conf\")
  if(EXISTS \"\${conf}\")
    message(STATUS \"Kept: \${conf}\")
  else()
    file(INSTALL \"${CMAKE_SOURCE_DIR}/examples/tether.conf\" DESTINATION \"\${etc}/tether\") # file(INSTALL) adds DESTDIR
  endif()")

# systemd units and logrotate.
set(TETHER_SYSTEMD_UNITDIR lib/systemd/system CACHE PATH "Where the systemd units go (relative to the prefix)")
configure_file(dist/tether.service.in ${CMAKE_BINARY_DIR}/dist/tether.service @ONLY)
configure_file(dist/tether-app@.service.in ${CMAKE_BINARY_DIR}/dist/tether-app@.service @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/dist/tether.service ${CMAKE_BINARY_DIR}/dist/tether-app@.service
  DESTINATION ${TETHER_SYSTEMD_UNITDIR})
install(FILES dist/logrotate RENAME tether DESTINATION ${CMAKE_INSTALL_SYSCONFDIR}/logrotate.d)

# Man pages from scdoc sources (docs/man/*.scd), when scdoc is there (scripts/deps installs it).
find_program(SCDOC scdoc)
if(SCDOC)
  set(man_pages tether.8 tether.conf.5 tether-app.8 tether-lab.1 libtether.3)
  set(man_out)
  foreach(page ${man_pages})
    string(REGEX MATCH "[0-9]$" section ${page})
    add_custom_command(OUTPUT ${CMAKE_BINARY_DIR}/man/${page}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/man
      COMMAND sh -c "${SCDOC} < ${CMAKE_SOURCE_DIR}/docs/man/${page}.scd > ${CMAKE_BINARY_DIR}/man/${page}"
      DEPENDS ${CMAKE_SOURCE_DIR}/docs/man/${page}.scd VERBATIM)
    list(APPEND man_out ${CMAKE_BINARY_DIR}/man/${page})
    install(FILES ${CMAKE_BINARY_DIR}/man/${page} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
  endforeach()
  add_custom_target(man ALL DEPENDS ${man_out})
else()
  message(STATUS "scdoc not found: no man pages (scripts/deps installs it)")
endif()
