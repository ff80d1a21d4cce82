# frozen_string_literal: true

require 'tmpdir'
require 'hyperion/config'
require 'hyperion/cli'

RSpec.describe 'Admin settings' do
  let(:token) { 'config-admin-token-0123456789' }

  around do |example|
    Dir.mktmpdir('hyperion-admin-config') do |dir|
      @dir = dir
      Dir.chdir(dir) { example.run }
    end
  end

  def resolve(cli: {}, env: {}, config_file: nil)
    Hyperion::Config.resolve(cli: cli, env: env, config_file: config_file, warn: ->(message) { raise message })
  end

  def token_file(content, mode: 0o600)
    path = File.join(@dir, 'token')
    File.write(path, content)
    File.chmod(mode, path)
    path
  end

  it 'takes the token from the environment and never shows it' do
    config = resolve(env: { 'HYPERION_ADMIN_TOKEN' => token })
    expect(config.admin_token).to eq(token)
    expect(config.source(:admin_token)).to eq(:env)
    expect(config.inspect).to include('admin_token=(hidden)')
    expect(config.inspect).not_to include(token)
  end

  it 'reads a token file, dropping one trailing newline, and accepts group read' do
    config = resolve(cli: { admin_token_file: token_file("#{token}\r\n", mode: 0o640) })
    expect(config.admin_token).to eq(token)
    expect(config.source(:admin_token)).to eq(:cli)
  end

  it 'refuses a token file others may read or group may write' do
    [0o604, 0o660, 0o602].each do |mode|
      path = token_file(token, mode: mode)
      expect { resolve(cli: { admin_token_file: path }) }
        .to raise_error(Hyperion::ConfigError, /admin_token_file #{path} has mode #{format('%04o', mode)}/)
    end
  end

  it 'refuses a missing token file and a token set twice' do
    expect { resolve(cli: { admin_token_file: File.join(@dir, 'nope') }) }
      .to raise_error(Hyperion::ConfigError, /admin_token_file .*nope: No such file/)
    expect { resolve(cli: { admin_token_file: token_file(token) }, env: { 'HYPERION_ADMIN_TOKEN' => token }) }
      .to raise_error(Hyperion::ConfigError, /admin_token \(from env\) and admin_token_file \(from cli\) are both set/)
  end

  it 'refuses short or unprintable tokens wherever they come from, without printing them' do
    ['short-token', 'has spaces in it 0123456', "tab\tseparated-0123456789"].each do |bad|
      expect { resolve(env: { 'HYPERION_ADMIN_TOKEN' => bad }) }.to raise_error(Hyperion::ConfigError) { |e|
        expect(e.message).to start_with('invalid value (hidden) for admin_token (HYPERION_ADMIN_TOKEN)')
        expect(e.message).not_to include(bad)
      }
      expect { resolve(cli: { admin_token_file: token_file(bad) }) }.to raise_error(Hyperion::ConfigError)
    end
    File.write('hyperion.rb', "admin_token 'tiny'\n")
    expect { resolve(config_file: 'hyperion.rb') }
      .to raise_error(Hyperion::ConfigError, /for admin_token \(hyperion.rb:1\): must be at least 16 characters/)
  end

  it 'has no admin listener without a port, and refuses a port without a token' do
    expect(resolve(env: { 'HYPERION_ADMIN_TOKEN' => token }).admin_listener).to be_nil
    config = resolve(env: { 'HYPERION_ADMIN_TOKEN' => token },
                     cli: { admin_listener_port: '9293', admin_listener_host: '[::1]' })
    expect(config.admin_listener).to eq([:tcp, '::1', 9293])
    expect { resolve(cli: { admin_listener_port: '9293' }) }
      .to raise_error(Hyperion::ConfigError, /admin_listener_port \(from cli\) needs an admin token/)
  end

  it 'offers --admin-token-file but no flag carrying the token' do
    help = StringIO.new
    Hyperion::CLI.new(['--help'], env: {}, stdout: help).parse
    expect(help.string).to include('--admin-token-file PATH')
    expect(help.string).not_to match(/--admin-token\s/)
  end
end
