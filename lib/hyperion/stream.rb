# frozen_string_literal: true

module Hyperion
  # The stream handed to a Rack 3 streaming body (`body.call(stream)`): writes go to the
  # client as they are made.
  class Stream
    def initialize(exchange)
      @exchange = exchange
      @closed = false
      @write_closed = false
    end

    def write(data)
      raise IOError, 'stream closed for writing' if @write_closed

      data = data.to_s
      @exchange.write(data) unless data.empty?
      data.bytesize
    end

    def <<(data)
      write(data)
      self
    end

    # Every write is handed to the I/O thread immediately; there is nothing to flush.
    def flush
      self
    end

    # The request body was consumed before the app ran; a streaming body reads nothing more.
    def read(_length = nil, _buffer = nil)
      nil
    end

    def close_read; end

    def close_write
      return if @write_closed

      @write_closed = true
      @exchange.finish
    end

    def close
      close_write
      @closed = true
    end

    def closed?
      @closed
    end
  end
end
