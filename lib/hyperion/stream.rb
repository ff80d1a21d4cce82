# frozen_string_literal: true

module Hyperion
  # The stream handed to a Rack 3 streaming body (`body.call(stream)`): writes go to the
  # client as they are made; reads come from the request body (rack.input).
  class Stream
    # `before_finish` runs once, just before the response is ended.
    def initialize(exchange, input = nil, &before_finish)
      @exchange = exchange
      @input = input
      @before_finish = before_finish
      @closed = false
      @write_closed = false
      @read_closed = false
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

    # Reads the request body, like IO#read: all of the rest without a length, nil at the end
    # when a length is given.
    def read(length = nil, buffer = nil)
      raise IOError, 'stream closed for reading' if @read_closed
      return(length.nil? || length.zero? ? +'' : nil) if @input.nil?

      buffer.nil? ? @input.read(length) : @input.read(length, buffer)
    end

    def close_read
      @read_closed = true
    end

    def close_write
      return if @write_closed

      @write_closed = true
      @before_finish&.call
      @exchange.finish
    end

    def close
      close_write
      close_read
      @closed = true
    end

    def closed?
      @closed
    end
  end
end
