# frozen_string_literal: true

require 'hyperion/version'

module Hyperion
  # Rack application served when no rackup file was given and there is no config.ru, so a
  # bare `hyperion` proves the server works and says what to do next. Self-contained: no
  # links, scripts or external assets.
  class WelcomeApp
    PAGE = <<~HTML
      <!DOCTYPE html>
      <html lang="en">
      <head>
      <meta charset="utf-8">
      <meta name="viewport" content="width=device-width, initial-scale=1">
      <title>Hyperion #{VERSION}</title>
      <style>
        body { font: 16px/1.5 system-ui, sans-serif; color: #222; background: #fafafa; margin: 0; }
        main { max-width: 36rem; margin: 12vh auto; padding: 0 1.5rem; }
        h1 { font-size: 1.6rem; margin-bottom: .25rem; }
        code, pre { font: .95em ui-monospace, monospace; background: #eee; border-radius: 4px; }
        code { padding: .1em .3em; }
        pre { padding: .75rem 1rem; overflow-x: auto; }
        .muted { color: #666; }
      </style>
      </head>
      <body>
      <main>
      <h1>Hyperion #{VERSION} is running</h1>
      <p class="muted">No Rack application was given, so this page is served instead.</p>
      <p>To run your own application, point Hyperion at its rackup file:</p>
      <pre>bundle exec hyperion path/to/config.ru</pre>
      <p>Run <code>hyperion --help</code> for all options.</p>
      </main>
      </body>
      </html>
    HTML

    ALLOWED_METHODS = %w[GET HEAD].freeze
    PLAIN = 'text/plain; charset=utf-8'

    # Unknown paths are 404 whatever the method; only `/` answers 405 to non-GET/HEAD.
    def call(env)
      head = env['REQUEST_METHOD'] == 'HEAD'
      return respond(404, PLAIN, "Not Found\n", head) unless ['', '/'].include?(env['PATH_INFO'])
      unless ALLOWED_METHODS.include?(env['REQUEST_METHOD'])
        return respond(405, PLAIN, "Method Not Allowed\n", head, 'allow' => ALLOWED_METHODS.join(', '))
      end

      respond(200, 'text/html; charset=utf-8', PAGE, head)
    end

    private

    # HEAD gets the GET headers, content-length included, and an empty body.
    def respond(status, content_type, body, head, extra_headers = {})
      headers = {
        'content-type' => content_type,
        'content-length' => body.bytesize.to_s,
        'cache-control' => 'no-store',
        'x-content-type-options' => 'nosniff'
      }.merge(extra_headers)
      [status, headers, head ? [] : [body]]
    end
  end
end
