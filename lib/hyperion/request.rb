# frozen_string_literal: true

module Hyperion
  # A request as plain values, given to `Hyperion::Server.handle` handler objects and to request
  # hooks: no Rack env is built for it.
  #
  #   method        "GET"
  #   path          "/v1/ping" (without the query)
  #   query_string  "a=1" ("" when none)
  #   http_version  "HTTP/1.1"
  #   headers       { "content-type" => "application/json", ... } lowercase names; repeated
  #                 fields joined with ", "
  #   body          the whole request body as a binary String
  class Request
    attr_reader :path, :query_string, :http_version, :headers, :body

    def initialize(method, path, query_string, http_version, headers, body)
      @method = method.freeze
      @path = path.freeze
      @query_string = query_string.freeze
      @http_version = http_version.freeze
      @headers = headers.freeze
      @body = body.freeze
      freeze
    end

    # The request method. With an argument this is Object#method, so reflection still works.
    def method(name = nil)
      name.nil? ? @method : super
    end

    def [](header)
      @headers[header.to_s.downcase]
    end

    def inspect
      "#<Hyperion::Request #{@method} #{@path}#{"?#{@query_string}" unless @query_string.empty?} #{@http_version}>"
    end
  end
end
