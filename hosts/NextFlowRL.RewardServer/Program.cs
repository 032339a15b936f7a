using System.CommandLine;
using NextFlowRL.Hosting;
using NextFlowRL.RewardServer;

NextFlowRL.Torch.Memory.NativeHeap.Configure(); // before the first tensor (CLIP/HPS rewards)
NextFlowRL.Torch.Determinism.NativeNumerics.Configure(); // MKL_CBWR: the same bits in every process
return await RewardServerProgram.RunAsync(args);

namespace NextFlowRL.RewardServer
{
    /// <summary>The <c>nextflow-reward-server</c> command line (System.CommandLine) over one Generic Host (<see cref="RewardServerApp.CreateForPlugins"/>).</summary>
    public static class RewardServerProgram
    {
        /// <summary>Runs the server until it is stopped (Ctrl-C or SIGTERM); returns the exit code (2 for bad arguments or configuration).</summary>
        public static async Task<int> RunAsync(string[] args)
        {
            var urls = new Option<string>("--urls") { Description = "Where to listen, ';'-separated (h2c or https).", DefaultValueFactory = _ => "http://127.0.0.1:5055" };
            var token = new Option<string?>("--token") { Description = "Require 'authorization: Bearer TOKEN' (also RewardServer:Token, env NEXTFLOWRL_RewardServer__Token)." };
            var concurrency = new Option<int?>("--max-concurrency") { Description = "Score calls at once (default 2; RewardServer:MaxConcurrency)." };
            var maxBytes = new Option<int?>("--max-message-bytes") { Description = "Largest request/response (default 67108864; RewardServer:MaxMessageBytes)." };
            var plugins = new Option<string[]>("--plugins") { Description = "Extra plugin directory (repeatable; also Plugins:Directories)." };
            var config = new Option<string?>("--config") { Description = "JSON configuration file (e.g. Rewards:clip:ModelPath)." };
            var sets = new Option<string[]>("--set") { Description = "One configuration value, Section:Key=Value (repeatable)." };
            var root = new RootCommand("nextflow-reward-server: serves installed NextFlowRL reward plugins over gRPC (reward_service.proto).")
            {
                urls, token, concurrency, maxBytes, plugins, config, sets,
            };
            root.SetAction(async (parse, ct) =>
            {
                // One configuration: the file, the environment, --set, then the flags (which are RewardServer:* keys).
                var flags = new List<string>(parse.GetValue(sets) ?? []);
                if (parse.GetValue(token) is { } t) flags.Add($"{RewardServerOptions.Section}:{nameof(RewardServerOptions.Token)}={t}");
                if (parse.GetValue(concurrency) is { } c) flags.Add(FormattableString.Invariant($"{RewardServerOptions.Section}:{nameof(RewardServerOptions.MaxConcurrency)}={c}"));
                if (parse.GetValue(maxBytes) is { } m) flags.Add(FormattableString.Invariant($"{RewardServerOptions.Section}:{nameof(RewardServerOptions.MaxMessageBytes)}={m}"));
                var configuration = NextFlowRLConfiguration.Build(flags, parse.GetValue(config));
                // Values of the wrong type are listed before anything binds (binding would stop at the first).
                var mistyped = ConfigurationChecks.Bind(configuration.GetSection(RewardServerOptions.Section), new RewardServerOptions());
                if (mistyped.Count > 0) throw new ConfigurationException(string.Join("; ", mistyped));
                using var loading = LoggerFactory.Create(b => b.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning));
                await using var app = RewardServerApp.CreateForPlugins(configuration, (parse.GetValue(plugins) ?? []).Select(Path.GetFullPath),
                    parse.GetValue(urls)!.Split(';', StringSplitOptions.RemoveEmptyEntries), loading);
                var host = NextFlowRLHost.From(app.Services);
                host.EnsureValidOptions(); // the server's and every plugin's options, all problems at once
                foreach (var p in host.Plugins)
                    Console.Error.WriteLine($"plugin {p.Name}: {p.Status.ToString().ToLowerInvariant()}{(p.Reason is null ? "" : " (" + p.Reason + ")")}");
                var options = app.Services.GetRequiredService<RewardServerOptions>();
                var catalog = app.Services.GetRequiredService<IRewardCatalog>();
                Console.Error.WriteLine($"serving rewards: {string.Join(", ", catalog.List().Select(r => r.Name))} at {parse.GetValue(urls)}{(string.IsNullOrEmpty(options.Token) ? "" : " (token required)")}");
                await app.RunAsync().ConfigureAwait(false); // the Generic Host's console lifetime: Ctrl-C and SIGTERM stop it
                return 0;
            });
            var parsed = root.Parse(args);
            if (parsed.Errors.Count > 0)
            {
                foreach (var e in parsed.Errors) Console.Error.WriteLine($"error: {e.Message}");
                Console.Error.WriteLine("see nextflow-reward-server --help");
                return 2;
            }
            try
            {
                return await parsed.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = null }).ConfigureAwait(false);
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
    }
}
