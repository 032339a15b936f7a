using NextFlowRL.Policies;
using NextFlowRL.Testing;
using Xunit;
using static TorchSharp.torch;

namespace MyPolicy.Tests;

/// <summary>The guarantees the trainer relies on (NextFlowRL.TestKit's PolicyContract), on small random weights.</summary>
public class ContractTests
{
    private static readonly string[] Prompts = ["a red square", "HELLO", "a red square"];

    private static INextScalePolicy Random(int seed = 1) => new MyPolicyProvider("my-policy", new MyPolicyOptions { Seed = seed }).Load(null, CPU);

    [Fact]
    public void KeepsThePolicyContract()
    {
        using var policy = Random();
        PolicyContract.CheckAll(policy, dir => MyPolicyPolicy.Load(dir, CPU), Prompts);
    }

    [Fact]
    public void GuidedSamplingRunsAndIsReproducible()
    {
        using var policy = Random();
        var o = new SamplingOptions { Seed = 5, CfgScale = 2, TopK = 4, Temperature = 0.8 };
        using var a = policy.Sample(Prompts, o);
        using var b = policy.Sample(Prompts, o);
        for (int k = 0; k < a.Length; k++) Assert.True(a.Grids[k].eq(b.Grids[k]).all().item<bool>());
    }

    [Fact]
    public void AFolderWithoutACheckpointIsAClearError()
    {
        var empty = Directory.CreateTempSubdirectory("my-policy-").FullName;
        try
        {
            var e = Assert.Throws<InvalidDataException>(() => MyPolicyPolicy.Load(empty, CPU));
            Assert.Contains("no my-policy checkpoint", e.Message);
        }
        finally
        {
            Directory.Delete(empty, true);
        }
    }
}
