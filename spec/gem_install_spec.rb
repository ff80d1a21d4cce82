# frozen_string_literal: true

require 'open3'
require 'tmpdir'
require 'net/http'

# The packaged gem builds its extension through extconf.rb (cargo) and the installed
# `hyperion` command serves a rackup. Installs into a private GEM_HOME; reuses the
# repository's cargo target directory so dependencies are not compiled again.
RSpec.describe 'gem build and install' do
  root = File.expand_path('..', __dir__)

  it 'installs with gem install --local and the installed command serves a rackup' do
    Dir.mktmpdir('hyperion-gem') do |dir|
      gem_home = File.join(dir, 'gems')
      env = {
        'GEM_HOME' => gem_home,
        'GEM_PATH' => [gem_home, *Gem.path].join(':'),
        'CARGO_TARGET_DIR' => File.join(root, 'target'),
        'BUNDLE_GEMFILE' => nil, 'RUBYOPT' => nil, 'BUNDLER_SETUP' => nil
      }
      out, status = Open3.capture2e(env, 'gem', 'build', File.join(root, 'hyperion.gemspec'), '-o',
                                    File.join(dir, 'hyperion-rb.gem'), chdir: root)
      expect(status).to be_success, out

      out, status = Open3.capture2e(env, 'gem', 'install', '--local', '--no-document',
                                    File.join(dir, 'hyperion-rb.gem'), chdir: dir)
      expect(status).to be_success, out

      app_dir = File.join(dir, 'app')
      Dir.mkdir(app_dir)
      File.write(File.join(app_dir, 'config.ru'),
                 "run ->(env) { [200, { 'content-type' => 'text/plain' }, ['from the installed gem']] }\n")
      port = ServerHelpers.free_port
      log = File.join(dir, 'server.log')
      pid = Process.spawn(env, File.join(gem_home, 'bin', 'hyperion'), '-p', port.to_s, 'config.ru',
                          chdir: app_dir, out: log, err: %i[child out])
      begin
        body = eventually(timeout: 20) do
          Net::HTTP.get(URI("http://127.0.0.1:#{port}/"))
        rescue SystemCallError
          raise "installed server exited:\n#{File.read(log)}" if Process.waitpid(pid, Process::WNOHANG)

          nil
        end
        expect(body).to eq('from the installed gem')
        installed = Dir[File.join(gem_home, '**', 'hyperion_native.so')]
        expect(installed).not_to be_empty
      ensure
        Process.kill('TERM', pid)
        Process.wait(pid)
      end
    end
  end
end
