# frozen_string_literal: true

require 'erb'

module Hyperion
  # Loads a directory into the engine's page cache: one complete response (status line,
  # content-type from the extension, content-length, body) per file, answered by the I/O thread
  # for GET and HEAD of the file's URL path. `index.html` also answers its directory's path
  # with a trailing slash. Entries that are not immutable look at their file again (mtime and
  # size) at most every 5 seconds when requested.
  module PageCache
    DEFAULT_TYPE = 'application/octet-stream'

    # Returns [files, bytes].
    def self.load(dir, mount: '/', immutable: true)
      require 'rack/mime'
      root = File.expand_path(dir)
      raise Errno::ENOENT, root unless File.directory?(root)

      mount = "#{mount.chomp('/')}/"
      files = bytes = 0
      Dir.glob('**/*', base: root).sort.each do |relative|
        path = File.join(root, relative)
        next unless File.file?(path)

        url = mount + relative.split('/').map { |segment| ERB::Util.url_encode(segment) }.join('/')
        type = Rack::Mime.mime_type(File.extname(path), DEFAULT_TYPE)
        urls = [url]
        urls << url.delete_suffix('index.html') if File.basename(relative) == 'index.html'
        bytes += Native.add_page_cache_file(urls, path, type, immutable)
        files += 1
      end
      [files, bytes]
    end
  end
end
