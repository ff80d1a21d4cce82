# frozen_string_literal: true

require 'hyperion/stream'

module Hyperion
  # Runs one exchange through a Rack 3 application and hands the response back to the engine.
  #
  # The env comes from the engine in one native call; the response goes back in one call for
  # Array bodies (head and body in a single write) or as a stream for enumerable and callable
  # bodies. Whatever happens, the body is closed and rack.response_finished callbacks run.
  class RackAdapter
    RESPONSE_FINISHED = 'rack.response_finished'

    def initialize(app, env_template:, logger:)
      @app = app
      @env_template = env_template
      @logger = logger
    end

    def call(exchange)
      env = exchange.build_env(@env_template)
      status = headers = body = error = nil
      begin
        status, headers, body = @app.call(env)
        send_response(exchange, status, headers, body)
      rescue Exception => e # rubocop:disable Lint/RescueException -- a worker must survive any app failure
        error = e
        app_failed(exchange, env, e)
      ensure
        close_body(body, env) unless body.nil?
        finished(env, status, headers, error)
      end
    end

    private

    def send_response(exchange, status, headers, body)
      raise InvalidResponse, "response status must be an Integer, got #{status.inspect}" unless status.is_a?(Integer)
      raise InvalidResponse, "response headers must be a Hash, got #{headers.class}" unless headers.is_a?(Hash)

      if body.is_a?(Array)
        exchange.respond(status, headers, body)
      elsif body.respond_to?(:to_ary)
        exchange.respond(status, headers, body.to_ary)
      elsif body.respond_to?(:each)
        stream_each(exchange, status, headers, body)
      elsif body.respond_to?(:call)
        stream_callable(exchange, status, headers, body)
      else
        raise InvalidResponse, "response body must respond to each or call, got #{body.class}"
      end
    end

    def stream_each(exchange, status, headers, body)
      exchange.start(status, headers)
      unless exchange.head?
        body.each do |chunk|
          raise InvalidResponse, "body chunk must be a String, got #{chunk.class}" unless chunk.is_a?(String)
          # The client went away: stop producing.
          break unless exchange.write(chunk)
        end
      end
      exchange.finish
    end

    def stream_callable(exchange, status, headers, body)
      exchange.start(status, headers)
      stream = Stream.new(exchange)
      body.call(stream)
      stream.close
    end

    def app_failed(exchange, env, error)
      @logger.exception(error, 'application error',
                        method: env['REQUEST_METHOD'], path: env['PATH_INFO'])
      exchange.fail
    rescue StandardError => e
      @logger.error('could not answer a failed request', error: e.message)
    end

    def close_body(body, env)
      body.close if body.respond_to?(:close)
    rescue Exception => e # rubocop:disable Lint/RescueException
      @logger.exception(e, 'body#close raised', path: env['PATH_INFO'])
    end

    # Callbacks run in reverse registration order, each isolated from the others.
    def finished(env, status, headers, error)
      callbacks = env[RESPONSE_FINISHED]
      return if callbacks.nil? || callbacks.empty?

      callbacks.reverse_each do |callback|
        callback.call(env, status, headers, error)
      rescue Exception => e # rubocop:disable Lint/RescueException
        @logger.exception(e, 'rack.response_finished callback raised')
      end
    end
  end
end
