# frozen_string_literal: true

# The hello response from a Server.handle block: an application thread runs it with a Rack env,
# skipping the rackup's middleware stack (here: none, so the difference is the dispatch alone).
Hyperion::Server.handle(:GET, '/') { |_env| [200, { 'content-type' => 'text/plain' }, ['Hello, World!']] }
run ->(_env) { [404, { 'content-type' => 'text/plain' }, ['not found']] }
