# frozen_string_literal: true

require 'securerandom'

module Hyperion
  # TLS pieces that live in Ruby: checking the certificate pair at boot, and the session-ticket
  # keys every process of one server shares (docs/TLS.md).
  module TLS
    # Raises ConfigError saying what is wrong with the configured certificate and key, so a
    # bad pair stops the boot (before a cluster master forks workers that would fail).
    def self.check!(config)
      return unless config.tls?

      Native.check_tls(config.tls_cert_path, config.tls_key_path)
    rescue Native::TlsError => e
      raise ConfigError, e.message
    end

    # The secret the ticket keys are derived from and the current key generation. Created once
    # per server (in a cluster, by the master before it forks), so a session ticket issued by
    # one worker resumes on any other. The generation lives in memory shared with every
    # process forked afterwards: #rotate in the master is seen at once by every worker,
    # including one being forked at that moment.
    class Tickets
      attr_reader :secret, :generation

      def initialize
        @secret = SecureRandom.bytes(32)
        @generation = Native::TicketGeneration.new
      end

      # Makes a new ticket key current; tickets of the previous key still resume, older ones
      # do not. Returns the new generation.
      def rotate
        @generation.bump
      end
    end
  end
end
