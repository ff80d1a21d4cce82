# frozen_string_literal: true

require 'socket'
require 'hyperion/stream'

module Hyperion
  # Runs one exchange through a Rack 3 application and hands the response back to the engine.
  #
  # The env comes from the engine in one native call; the response goes back in one call for
  # Array bodies (head and body in a single write), as a file the engine sends itself for
  # to_path bodies, or as a stream for enumerable and callable bodies. Full and partial hijack
  # hand the socket over. Whatever happens, the body is closed and rack.response_finished
  # callbacks run once the response is written.
  class RackAdapter
    RESPONSE_FINISHED = 'rack.response_finished'
    RACK_INPUT = 'rack.input'
    RACK_HIJACK = 'rack.hijack'
    HIJACK_BUFFERED = 'hyperion.hijack_buffered'

    # Wraps a descriptor handed over by the engine in the matching Ruby socket class.
    def self.take_socket(env, handover)
      fd, buffered, unix = handover
      io = (unix ? UNIXSocket : TCPSocket).for_fd(fd)
      io.sync = true
      io.binmode
      env[HIJACK_BUFFERED] = buffered
      io
    end

    # rack.early_hints for one request: 103 Early Hints. Rack 2 style values joined with "\n"
    # become separate lines; an invalid header is the app's bug, logged, and never written.
    # The engine makes one per request as it builds the env (a native object holding the
    # exchange and the logger: no `new`, no instance variables).
    EarlyHints = Native::EarlyHints
    class EarlyHints
      def call(headers)
        hints = headers.transform_values { |value| value.is_a?(String) && value.include?("\n") ? value.split("\n") : value }
        exchange.early_hints(hints)
      rescue InvalidResponse => e
        logger.warn('early hints not sent', error: e.message)
        false
      end
    end

    # rack.hijack for one request: hands the socket over on the first call, the same IO after.
    # Made by the engine like EarlyHints, holding the exchange and the env.
    Hijack = Native::Hijack
    class Hijack
      def call
        @io ||= RackAdapter.take_socket(env, exchange.hijack)
      end
    end

    # `hijack`: whether the socket can be handed to the app (not over TLS).
    def initialize(app, env_templates:, logger:, hijack: true)
      @app = app
      @env_templates = env_templates
      @logger = logger
      @hijack = hijack
    end

    def call(exchange)
      direct = exchange.direct
      hooks = Routes.hooks?
      return serve_rack(exchange, @app, nil) if direct.nil? && !hooks

      request = hooks ? Request.new(*exchange.request_parts) : nil
      case direct
      when nil then serve_rack(exchange, @app, request)
      when :static then serve_static(exchange, request)
      else
        handler = Routes.handler(direct)
        handler.is_a?(Proc) ? serve_rack(exchange, handler, request) : serve_request(exchange, handler, request)
      end
    end

    private

    # The Rack path: the rackup's app, or a `handle` block (same env, no middleware).
    def serve_rack(exchange, app, request)
      # rack.early_hints, and rack.hijack where the socket can be handed over, are set too.
      env = exchange.build_env(@env_templates, @logger, @hijack)
      status = headers = body = error = nil
      done = false
      run_hooks(Routes.start_hooks, request, env) if request
      begin
        status, headers, body = app.call(env)
        # The usual response (an Array body, nothing to close or to call back once written)
        # is checked and sent in one call; anything else takes the general path.
        done = exchange.serve_array(env, status, headers, body)
        # After a full hijack the socket is the app's; whatever it returned is ignored.
        send_response(exchange, env, status, headers, body) unless done || exchange.hijacked?
      rescue Exception => e # rubocop:disable Lint/RescueException -- a worker must survive any app failure
        error = e
        app_failed(exchange, env, e) unless exchange.hijacked?
      ensure
        unless done
          close_body(body, env) unless body.nil?
          # A large request body is a temp file: give its descriptor back now, not at GC. A
          # streamed body stops being read from the client.
          input = exchange.input_to_close
          input.close unless input.nil? || input.closed?
          finished(exchange, env, status, headers, error)
        end
        run_hooks(Routes.end_hooks, request, env, [status, headers, body], error) if request
      end
    end

    # A `handle` route with a handler object: it gets a Hyperion::Request, no env.
    def serve_request(exchange, handler, request)
      request ||= Request.new(*exchange.request_parts)
      status = headers = body = error = nil
      context = { 'REQUEST_METHOD' => request.method, 'PATH_INFO' => request.path }
      run_hooks(Routes.start_hooks, request, nil)
      begin
        status, headers, body = handler.call(request)
        send_response(exchange, context, status, headers, body)
      rescue Exception => e # rubocop:disable Lint/RescueException
        error = e
        app_failed(exchange, context, e)
      ensure
        close_body(body, context) unless body.nil?
        run_hooks(Routes.end_hooks, request, nil, [status, headers, body], error)
      end
    end

    # A static route while request hooks are registered: the prebuilt response, observed.
    def serve_static(exchange, request)
      run_hooks(Routes.start_hooks, request, nil)
      error = status = nil
      begin
        status = exchange.respond_static
      rescue StandardError => e
        error = e
        @logger.exception(e, 'static route failed', path: request.path)
      ensure
        run_hooks(Routes.end_hooks, request, nil, [status, nil, nil], error)
      end
    end

    # Hooks run in registration order; a failing hook is logged and skipped.
    def run_hooks(hooks, *args)
      hooks.each do |hook|
        hook.call(*args)
      rescue StandardError => e
        @logger.exception(e, 'request hook raised', hook: hook.source_location&.join(':'))
      end
    end

    # When the app registered rack.response_finished callbacks, they must run only once the
    # response is completely written: ask the engine to say when.
    def watch_written(exchange, env)
      callbacks = env[RESPONSE_FINISHED]
      exchange.request_written_notice unless callbacks.nil? || callbacks.empty?
    end

    def send_response(exchange, env, status, headers, body)
      raise InvalidResponse, "response status must be an Integer, got #{status.inspect}" unless status.is_a?(Integer)
      raise InvalidResponse, "response headers must be a Hash, got #{headers.class}" unless headers.is_a?(Hash)

      if (upgrade = headers[RACK_HIJACK])
        partial_hijack(exchange, env, status, headers, upgrade)
      elsif body.is_a?(Array)
        watch_written(exchange, env)
        exchange.respond(status, headers, body)
      elsif body.respond_to?(:to_ary)
        watch_written(exchange, env)
        exchange.respond(status, headers, body.to_ary)
      elsif body.respond_to?(:to_path) && body.respond_to?(:each) && send_file(exchange, env, status, headers, body)
        nil
      elsif body.respond_to?(:each)
        stream_each(exchange, env, status, headers, body)
      elsif body.respond_to?(:call)
        stream_callable(exchange, env, status, headers, body)
      else
        raise InvalidResponse, "response body must respond to each or call, got #{body.class}"
      end
    end

    # The engine sends the file itself (sendfile from the I/O thread, or one write when
    # small); false when it cannot (not a regular file, a partial content-length).
    def send_file(exchange, env, status, headers, body)
      watch_written(exchange, env)
      !exchange.send_file(status, headers, body.to_path).nil?
    end

    # rack.hijack in the response headers: the head goes out as given, then the callable
    # gets the socket. The body is not sent.
    def partial_hijack(exchange, env, status, headers, upgrade)
      raise InvalidResponse, 'rack.hijack response header must respond to call' unless upgrade.respond_to?(:call)
      raise InvalidResponse, 'rack.hijack is not available over TLS (rack.hijack? is false)' unless @hijack

      io = RackAdapter.take_socket(env, exchange.upgrade(status, headers))
      upgrade.call(io)
    end

    def stream_each(exchange, env, status, headers, body)
      exchange.start(status, headers)
      unless exchange.head?
        body.each do |chunk|
          raise InvalidResponse, "body chunk must be a String, got #{chunk.class}" unless chunk.is_a?(String)
          # The client went away: stop producing.
          break unless exchange.write(chunk)
        end
      end
      watch_written(exchange, env)
      finish_stream(exchange, body)
    end

    # Rack 3 body trailers (after `each`): trailing HEADERS on HTTP/2, the trailer section of a
    # chunked HTTP/1.1 body; without them, or where they cannot travel, the plain end.
    # Trailers that cannot be sent (`trailers` raised or returned something else than a Hash,
    # an invalid field) are logged and the stream ends normally; pseudo-header and
    # connection-specific names are dropped by the engine.
    def finish_stream(exchange, body)
      trailers = body_trailers(body)
      if trailers.is_a?(Hash) && !trailers.empty?
        begin
          return exchange.finish_trailers(trailers.to_h { |name, value| [name.to_s, Array(value).join(', ')] })
        rescue InvalidResponse => e
          @logger.warn('response trailers not sent', error: e.message)
        end
      elsif !trailers.nil? && !trailers.is_a?(Hash)
        @logger.warn('response trailers not sent', error: "body#trailers returned #{trailers.class}, not a Hash")
      end
      exchange.finish
    end

    def body_trailers(body)
      # In development the app's body is wrapped by Rack::Lint, which does not forward
      # `trailers`: ask the body it wraps.
      body = body.instance_variable_get(:@body) while lint_body?(body) && !body.respond_to?(:trailers)
      body.trailers if body.respond_to?(:trailers)
    rescue StandardError => e
      @logger.exception(e, 'body#trailers raised')
      nil
    end

    def lint_body?(body)
      defined?(Rack::Lint::Wrapper) && body.instance_of?(Rack::Lint::Wrapper)
    end

    def stream_callable(exchange, env, status, headers, body)
      exchange.start(status, headers)
      stream = Stream.new(exchange, env[RACK_INPUT]) { watch_written(exchange, env) }
      body.call(stream)
      stream.close
    end

    def app_failed(exchange, env, error)
      @logger.exception(error, 'application error',
                        method: env['REQUEST_METHOD'], path: env['PATH_INFO'])
      watch_written(exchange, env) unless exchange.started?
      exchange.fail
    rescue StandardError => e
      @logger.error('could not answer a failed request', error: e.message)
    end

    def close_body(body, env)
      body.close if body.respond_to?(:close)
    rescue Exception => e # rubocop:disable Lint/RescueException
      @logger.exception(e, 'body#close raised', path: env['PATH_INFO'])
    end

    # Callbacks run in reverse registration order, each isolated from the others, once the
    # response is written (or has failed).
    def finished(exchange, env, status, headers, error)
      callbacks = env[RESPONSE_FINISHED]
      return if callbacks.nil? || callbacks.empty?

      # nil: nothing to wait for (hijacked, or the engine answered by itself).
      written = exchange.wait_written
      error ||= IOError.new('client disconnected before the response was complete') if written == false
      callbacks.reverse_each do |callback|
        callback.call(env, status, headers, error)
      rescue Exception => e # rubocop:disable Lint/RescueException
        @logger.exception(e, 'rack.response_finished callback raised')
      end
    end
  end
end
