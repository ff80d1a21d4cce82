# frozen_string_literal: true

# Files through the Rack app: Rack::Files answers with a to_path body, which Hyperion sends in
# one write (small) or with sendfile (large). BENCH_FILES is the directory; / answers 200 for
# readiness checks.
require 'rack/files'
files = Rack::Files.new(ENV.fetch('BENCH_FILES'))
run ->(env) { env['PATH_INFO'] == '/' ? [200, { 'content-type' => 'text/plain' }, ['ok']] : files.call(env) }
