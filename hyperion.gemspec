# frozen_string_literal: true

require_relative 'lib/hyperion/version'

Gem::Specification.new do |spec|
  spec.name = 'hyperion-rb'
  spec.version = Hyperion::VERSION
  spec.summary = 'A fast Rack 3 application server with a native core'
  spec.description = 'Hyperion serves Rack 3 applications over HTTP/1.1 from a native event loop: ' \
                     'parsing, keep-alive and writes never touch Ruby, and idle connections hold no thread.'
  spec.license = 'MIT'
  spec.authors = ['Hyperion contributors']
  spec.homepage = 'https://example.invalid/hyperion-rb'
  spec.required_ruby_version = '>= 3.1'

  spec.files = Dir[
    'lib/**/*.rb', 'bin/hyperion', 'ext/hyperion_native/extconf.rb', 'ext/hyperion_native/Cargo.toml',
    'ext/hyperion_native/src/**/*.rs', 'crates/*/Cargo.toml', 'crates/*/src/**/*.rs',
    'Cargo.toml', 'Cargo.lock', 'README.md', 'LICENSE', 'CHANGELOG.md', 'docs/*.md'
  ]
  spec.bindir = 'bin'
  spec.executables = ['hyperion']
  spec.require_paths = ['lib']
  spec.extensions = ['ext/hyperion_native/extconf.rb']

  spec.add_dependency 'rack', '>= 3.0', '< 4'
end
