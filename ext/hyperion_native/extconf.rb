# frozen_string_literal: true

# Writes a Makefile that builds the native extension with cargo. Used by `gem install` (and
# by `rake compile` through the same cargo command); no rb_sys gem is needed.
require 'mkmf'
require 'rbconfig'

ext_dir = __dir__
root = File.expand_path('../..', ext_dir)
cargo = ENV.fetch('CARGO', 'cargo')
abort "hyperion-rb: cargo not found (install Rust from https://rustup.rs)" unless find_executable(cargo)

target_dir = ENV.fetch('CARGO_TARGET_DIR', File.join(root, 'target'))
dlext = RbConfig::CONFIG['DLEXT']
built = File.join(target_dir, 'release', 'libhyperion_native.so')
# RubyGems points sitearchdir at its staging directory while this script runs.
install_dir = RbConfig::CONFIG['sitearchdir']

File.write('Makefile', <<~MAKE)
  CARGO = #{cargo}
  ROOT = #{root}
  TARGET_DIR = #{target_dir}
  BUILT = #{built}
  DLLIB = hyperion_native.#{dlext}
  RUBYARCHDIR = $(DESTDIR)#{install_dir}

  all: $(DLLIB)

  $(DLLIB): FORCE
  \tcd "$(ROOT)" && RUBY="#{RbConfig.ruby}" CARGO_TARGET_DIR="$(TARGET_DIR)" $(CARGO) build --release --locked -p hyperion_native
  \tcp "$(BUILT)" $(DLLIB)

  install: $(DLLIB)
  \tmkdir -p "$(RUBYARCHDIR)/hyperion"
  \tcp $(DLLIB) "$(RUBYARCHDIR)/hyperion/$(DLLIB)"

  clean:
  \trm -f $(DLLIB)

  distclean: clean
  \trm -f Makefile

  FORCE:
  .PHONY: all install clean distclean FORCE
MAKE
