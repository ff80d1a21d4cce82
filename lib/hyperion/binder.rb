# frozen_string_literal: true

require 'socket'

module Hyperion
  # The listening sockets of a cluster. The master creates them before forking and keeps them
  # open for as long as it runs; workers inherit them and hand the descriptor to their engine.
  #
  # - `share`: one socket; every worker accepts on it.
  # - `reuseport` (Linux): one SO_REUSEPORT socket per worker slot, all on the same address, so
  #   the kernel spreads new connections over the workers. The master keeps every slot's
  #   socket, so a worker that stops closes only its own copy: connections queued on that
  #   socket stay queued until the slot's replacement accepts them, where closing the last
  #   copy would reset them.
  #
  # A Unix socket path can be bound only once, so Unix listeners always use `share`.
  class Binder
    BACKLOG = 1024

    attr_reader :model

    # `listener` is Config#listener: [:tcp, host, port] or [:unix, path].
    def initialize(listener, model:)
      @kind, @host, @port = listener
      @path = @host if @kind == :unix
      @model = @kind == :unix ? :share : model
      @sockets = {}
    end

    # The socket the worker in slot `index` accepts on; bound on first use. Raises BindError.
    def socket_for(index)
      key = @model == :reuseport ? index : 0
      @sockets[key] ||= open_socket
    end

    # A slot is gone for good (fewer workers): the master lets go of its socket, which closes
    # once the slot's worker has stopped. Nothing to do when all workers share one socket.
    def release(index)
      @sockets.delete(index)&.close if @model == :reuseport
    end

    # Every socket the master holds, so that a new worker can close those that are not its own.
    def sockets
      @sockets.values
    end

    def addresses
      return ["unix://#{@path}"] if @kind == :unix

      host = @host.include?(':') ? "[#{@host}]" : @host
      ["http://#{host}:#{@port}"]
    end

    def close
      @sockets.each_value { |socket| socket.close unless socket.closed? }
      @sockets.clear
      File.unlink(@path) if @path && File.socket?(@path)
    rescue SystemCallError
      nil
    end

    private

    def open_socket
      @kind == :unix ? open_unix : open_tcp
    rescue SystemCallError, SocketError => e
      raise BindError, "cannot listen on #{describe}: #{e.message}"
    end

    def open_tcp
      address = Addrinfo.getaddrinfo(@host, @port, nil, :STREAM, nil, Socket::AI_PASSIVE).first
      raise SocketError, "cannot resolve #{@host}" unless address

      reuseport = @model == :reuseport
      # The first SO_REUSEPORT socket on a port would silently join a group that another
      # server of the same user already listens with: check the port is free first.
      probe(address) if reuseport && @sockets.empty? && @port != 0
      socket = tcp_socket(address, reuseport: reuseport)
      # With port 0 the first socket picks the port and the other slots join it.
      @port = socket.local_address.ip_port
      socket
    end

    def probe(address)
      tcp_socket(address, reuseport: false).close
    end

    def tcp_socket(address, reuseport:)
      socket = Socket.new(address.afamily, Socket::SOCK_STREAM, 0)
      socket.setsockopt(Socket::SOL_SOCKET, Socket::SO_REUSEADDR, true)
      socket.setsockopt(Socket::SOL_SOCKET, Socket::SO_REUSEPORT, true) if reuseport
      # "::" means IPv6 only, as in single mode; bind 0.0.0.0 for IPv4.
      socket.setsockopt(Socket::IPPROTO_IPV6, Socket::IPV6_V6ONLY, true) if address.ipv6?
      socket.bind(Addrinfo.tcp(address.ip_address, @port))
      socket.listen(BACKLOG)
      socket
    rescue StandardError
      socket&.close
      raise
    end

    def open_unix
      remove_stale_socket
      socket = Socket.new(Socket::AF_UNIX, Socket::SOCK_STREAM, 0)
      socket.bind(Addrinfo.unix(@path))
      socket.listen(BACKLOG)
      socket
    rescue StandardError
      socket&.close
      raise
    end

    # A socket file left by a previous run would make bind fail; anything else at that path,
    # or a socket something still answers on, is not ours to delete.
    def remove_stale_socket
      return unless File.exist?(@path) || File.symlink?(@path)
      raise Errno::EEXIST, "#{@path} exists and is not a socket" unless File.socket?(@path)

      begin
        UNIXSocket.new(@path).close
        raise Errno::EADDRINUSE, "#{@path} is in use by another server"
      rescue Errno::ECONNREFUSED, Errno::ENOENT
        File.unlink(@path)
      end
    end

    def describe
      @kind == :unix ? "unix://#{@path}" : "#{@host}:#{@port}"
    end
  end
end
