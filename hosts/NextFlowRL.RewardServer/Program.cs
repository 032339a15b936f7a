using System.Globalization;
using NextFlowRL.Hosting;
using NextFlowRL.RewardServer;

NextFlowRL.Torch.Memory.NativeHeap.Configure(); // before the first tensor (CLIP/HPS rewards)
NextFlowRL.Torch.Determinism.NativeNumerics.Configure(); // MKL_CBWR: the same bits in every process
return await RewardServerProgram.RunAsync(args);

namespace NextFlowRL.RewardServer
{
    /// <summary>The <c>nextflow-reward-server</c> command line.</summary>
    public static class RewardServerProgram
    {
        private const string Usage = """
            nextflow-reward-server: serves installed NextFlowRL reward plugins over gRPC (reward_service.proto).

            Options:
              --urls URLS               where to listen, ';'-separated (default http://127.0.0.1:5055; h2c or https)
              --token TOKEN             require 'authorization: Bearer TOKEN' (also RewardServer:Token,
                                        env NEXTFLOWRL_RewardServer__Token)
              --max-concurrency N       score calls at once (default 2; RewardServer:MaxConcurrency)
              --max-message-bytes N     largest request/response (default 67108864; RewardServer:MaxMessageBytes)
              --plugins DIR             extra plugin directory (repeatable; also Plugins:Directories)
              --config FILE             JSON configuration (e.g. Rewards:clip:ModelPath)
              --set Section:Key=Value   one configuration value (repeatable)
              --help                    this text
            """;

        /// <summary>Runs the server until it is stopped; returns the exit code (2 for bad arguments or configuration).</summary>
        public static async Task<int> RunAsync(string[] args)
        {
            string urls = "http://127.0.0.1:5055";
            string? token = null, configFile = null;
            int? concurrency = null, maxBytes = null;
            var sets = new List<string>();
            var pluginDirs = new List<string>();
            try
            {
                for (int i = 0; i < args.Length; i++)
                {
                    string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
                    switch (args[i])
                    {
                        case "--help" or "-h":
                            Console.WriteLine(Usage);
                            return 0;
                        case "--urls": urls = Next(); break;
                        case "--token": token = Next(); break;
                        case "--max-concurrency": concurrency = PositiveInt(args[i], Next()); break;
                        case "--max-message-bytes": maxBytes = PositiveInt(args[i], Next()); break;
                        case "--plugins": pluginDirs.Add(Next()); break;
                        case "--config": configFile = Next(); break;
                        case "--set": sets.Add(Next()); break;
                        default: throw new ArgumentException($"unknown option '{args[i]}' (see --help)");
                    }
                }
            }
            catch (ArgumentException e)
            {
                Console.Error.WriteLine($"error: {e.Message}");
                return 2;
            }

            try
            {
                var configuration = NextFlowRLConfiguration.Build(sets, configFile);
                var options = new RewardServerOptions();
                var mistyped = ConfigurationChecks.Bind(configuration.GetSection(RewardServerOptions.Section), options);
                if (mistyped.Count > 0) throw new ConfigurationException(string.Join("; ", mistyped));
                options.Token = token ?? options.Token;
                options.MaxConcurrency = concurrency ?? options.MaxConcurrency;
                options.MaxMessageBytes = maxBytes ?? options.MaxMessageBytes;
                using var host = NextFlowRLHost.Build(configuration, pluginDirectories: pluginDirs.Select(Path.GetFullPath));
                host.EnsureValidOptions();
                foreach (var p in host.Plugins)
                    Console.Error.WriteLine($"plugin {p.Name}: {p.Status.ToString().ToLowerInvariant()}{(p.Reason is null ? "" : " (" + p.Reason + ")")}");
                var catalog = new HostRewardCatalog(host);
                Console.Error.WriteLine($"serving rewards: {string.Join(", ", catalog.List().Select(r => r.Name))} at {urls}{(string.IsNullOrEmpty(options.Token) ? "" : " (token required)")}");
                await using var app = RewardServerApp.Create(catalog, options, urls.Split(';', StringSplitOptions.RemoveEmptyEntries));
                await app.RunAsync().ConfigureAwait(false);
                return 0;
            }
            catch (ConfigurationException e)
            {
                Console.Error.WriteLine($"error: {e.Message}");
                return 2;
            }
            catch (IOException e)
            {
                Console.Error.WriteLine($"error: {e.Message}");
                return 1;
            }
        }

        private static int PositiveInt(string flag, string value) =>
            int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) && n > 0
                ? n
                : throw new ArgumentException($"{flag} expects a positive integer, got '{value}'");
    }
}
