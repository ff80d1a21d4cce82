# frozen_string_literal: true

# The hello response as a direct static route: answered by the engine, never entering Ruby.
Hyperion::Server.handle_static(:GET, '/', 'Hello, World!', content_type: 'text/plain')
run ->(_env) { [404, { 'content-type' => 'text/plain' }, ['not found']] }
