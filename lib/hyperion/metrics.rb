# frozen_string_literal: true

module Hyperion
  # Counters an application adds to the server's own. They live in the same shared memory as
  # the engine's counters, so in cluster mode every worker's counts appear in any worker's
  # scrape, exported as `hyperion_<name>` with a `worker_id` label.
  #
  #   Hyperion.metrics.increment(:jobs_enqueued)
  #   Hyperion.metrics.increment(:bytes_uploaded, body.bytesize)
  class Metrics
    def initialize
      @ids = {}
      @mutex = Mutex.new
    end

    # Adds `by` (default 1) to the counter `name` (letters, digits and _; at most 56 bytes;
    # not the name of a built-in metric, else ArgumentError). At most 128 names exist per
    # server, together with the engine's rejection reasons; past that, increments of new names
    # are dropped and false is returned.
    def increment(name, by = 1)
      by = Integer(by)
      raise ArgumentError, "increment must be >= 0, got #{by}" if by.negative?

      id = counter_id(name.to_s)
      return false unless id

      Native.metrics_add(id, by)
      true
    end

    # This process's custom counters: { name => count }.
    def counters
      Native.metrics_stats[:custom]
    end

    # A new region was mapped (cluster master, before forking): ids from the old one are void.
    def forget_ids
      @mutex.synchronize { @ids = {} }
    end

    private

    def counter_id(name)
      @ids.fetch(name) do
        @mutex.synchronize { @ids[name] = Native.metrics_counter_id(name) }
      end
    end
  end

  @metrics = Metrics.new

  class << self
    # Custom counters: `Hyperion.metrics.increment(:name)`.
    attr_reader :metrics

    # A snapshot of this process's counters (in cluster mode, this worker's):
    # connections_accepted, connections_active, requests_total, requests_in_flight,
    # responses ({ status => count }), parse_errors, rejections ({ reason => count }),
    # app_errors, read_timeouts, rejected (503), bytes_written, dispatch_rack,
    # dispatch_static, dispatch_handler, dispatch_page_cache, access_log_dropped, custom,
    # worker_id.
    def stats
      Native.metrics_stats
    end

    # Every worker's metrics in the Prometheus text format (what `/-/metrics` serves).
    def metrics_text
      Native.metrics_text
    end

    # Maps the shared metrics region with `slots` worker slots. A cluster master calls it
    # before forking; each worker then writes its own slot.
    def setup_cluster_metrics(slots)
      Native.metrics_setup(slots)
      metrics.forget_ids
    end
  end
end
