# frozen_string_literal: true

require 'stringio'
require 'hyperion/version'
require 'hyperion/hyperion_native'
require 'hyperion/logger'
require 'hyperion/config'
require 'hyperion/routes'
require 'hyperion/metrics'
require 'hyperion/log_file'
require 'hyperion/page_cache'
require 'hyperion/stream_input'
require 'hyperion/null_input'
require 'hyperion/rack_adapter'
require 'hyperion/server'
require 'hyperion/tls'

# Hyperion: a Rack 3 application server with a native core.
#
#   require 'hyperion'
#   server = Hyperion::Server.new(app, config: Hyperion::Config.defaults, logger: Hyperion::Logger.new)
#   server.start
#   server.wait
module Hyperion
  # A response the server refuses to put on the wire (bad status, a header value with CR, LF or
  # NUL, a non-String body chunk). The exchange is answered 500 instead.
  InvalidResponse = Native::InvalidResponse

  # The listener could not be bound (address in use, permission, bad host).
  BindError = Native::BindError

  # A bug inside the native extension, surfaced as an exception instead of ending the process.
  InternalError = Native::InternalError

  # A streamed request body (gRPC over HTTP/2) that cannot be read further: the client reset
  # the stream, the body outgrew max_body_bytes, or no bytes came for max_request_read_seconds.
  InputError = Native::InputError

  # A TLS certificate or key that cannot be used (unreadable, not PEM, not a matching pair).
  TlsError = Native::TlsError
end
