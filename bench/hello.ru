# frozen_string_literal: true

# The generic Rack hello: the same rackup for every server in bench/run.sh.
run ->(_env) { [200, { 'content-type' => 'text/plain' }, ['Hello, World!']] }
