# frozen_string_literal: true

require 'hyperion/request'

module Hyperion
  # Direct routes and request hooks: the class-level API of Hyperion::Server.
  #
  # Registrations are process-wide (one table in the native engine, inherited by forked
  # workers) and may happen before or after the server starts; the last registration for a
  # method and path wins. Paths match exactly, without the query string.
  module Routes
    METHODS = %w[GET POST PUT DELETE HEAD PATCH OPTIONS].freeze

    @handlers = [].freeze
    @start_hooks = [].freeze
    @end_hooks = [].freeze
    @lock = Mutex.new

    class << self
      attr_reader :start_hooks, :end_hooks

      def handler(id)
        @handlers.fetch(id)
      end

      # nil when no hook is registered (the adapter's fast path).
      def hooks?
        !(@start_hooks.empty? && @end_hooks.empty?)
      end

      def method_name(method)
        name = method.to_s.upcase if method.is_a?(Symbol) || method.is_a?(String)
        raise ArgumentError, "unsupported method #{method.inspect} (one of #{METHODS.join(' ')})" unless METHODS.include?(name)

        name
      end

      def check_path(path)
        raise ArgumentError, "path must be a String, got #{path.inspect}" unless path.is_a?(String)
        raise ArgumentError, "path must start with /, got #{path.inspect}" unless path.start_with?('/')

        path
      end

      def add_handler(method, path, handler)
        @lock.synchronize do
          id = @handlers.size
          @handlers = (@handlers + [handler]).freeze
          Native.add_handler_route(method, path, id)
        end
      end

      def add_hook(kind, block)
        raise ArgumentError, "#{kind} needs a block" unless block

        @lock.synchronize do
          if kind == :on_request_start
            @start_hooks = (@start_hooks + [block]).freeze
          else
            @end_hooks = (@end_hooks + [block]).freeze
          end
          Native.observe_routes(true)
        end
      end
    end

    # Hyperion::Server.handle_static(:GET, '/health', 'ok', content_type: 'text/plain')
    # Hyperion::Server.handle_static('/health', body: 'ok')
    #
    # The whole response is built once, here, and answered by the I/O thread (a per-second
    # cached date header, one write, keep-alive kept). A GET registration answers HEAD too.
    def handle_static(*args, body: nil, content_type: 'text/plain', status: 200, headers: {})
      raise ArgumentError, "wrong number of arguments (given #{args.size}, expected 1..3)" unless (1..3).cover?(args.size)

      method, path, positional_body = args.first.is_a?(String) ? ['GET', *args] : args
      raise ArgumentError, 'give the body positionally or as body:, not both' if positional_body && body

      body = positional_body || body || ''
      raise ArgumentError, "body must be a String, got #{body.class}" unless body.is_a?(String)

      all_headers = {}
      all_headers['content-type'] = content_type.to_s if content_type
      headers.each { |name, value| all_headers[name.to_s.downcase] = value.to_s }
      Native.add_static_route(Routes.method_name(method), Routes.check_path(path), Integer(status), all_headers, body.b)
      nil
    end

    # Hyperion::Server.handle(:GET, '/v1/ping') { |env| [200, {}, ['pong']] }
    #   runs the block with a Rack env on an application thread, skipping the rackup's
    #   middleware stack.
    # Hyperion::Server.handle(:POST, '/v1/echo', handler)
    #   calls handler.call(request) with a Hyperion::Request; it returns a Rack response.
    def handle(method, path, handler = nil, &block)
      raise ArgumentError, 'give a handler object or a block, not both' if handler && block

      target = handler || block
      raise ArgumentError, 'handle needs a handler responding to #call or a block' unless target.respond_to?(:call)

      Routes.add_handler(Routes.method_name(method), Routes.check_path(path), target)
      nil
    end

    # Runs before every request (Rack app, handle routes and, once a hook exists, static
    # routes): { |request, env| }; env is nil for routes that have none.
    def on_request_start(&block)
      Routes.add_hook(:on_request_start, block)
    end

    # Runs after every request: { |request, env, response, error| } where response is the
    # [status, headers, body] the app returned ([status, nil, nil] for static routes).
    def on_request_end(&block)
      Routes.add_hook(:on_request_end, block)
    end
  end
end
