using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace NextFlowRL.Tests;

[Collection(TorchCollection.Name)]
public class TorchRuntimeTests
{
    [Fact]
    public void MatmulAndBackwardRunOnTheNativeBackend()
    {
        using var scope = NewDisposeScope();
        var a = tensor(new float[] { 1, 2, 3, 4 }, [2, 2], requires_grad: true);
        var b = tensor(new float[] { 5, 6, 7, 8 }, [2, 2]);
        var y = matmul(a, b);
        Assert.Equal(new float[] { 19, 22, 43, 50 }, y.data<float>().ToArray());
        y.sum().backward();
        // d(sum(A B))/dA[i,k] = sum_j B[k,j]
        Assert.Equal(new float[] { 11, 15, 11, 15 }, a.grad!.data<float>().ToArray());
    }
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TorchCollection
{
    public const string Name = "torch";
}

/// <summary>Reading resident memory from /proc/self/status lines, including the widths the kernel pads to.</summary>
public sealed class ResidentMemoryTests
{
    [Theory]
    [InlineData("VmRSS:\t  204800 kB", 204800L * 1024)]
    [InlineData("VmHWM:\t12345678 kB", 12345678L * 1024)] // 9.5 GiB and up: no space after the tab
    [InlineData("VmRSS:\t       0 kB", 0L)]
    public void StatusLinesParseAtEveryWidth(string line, long bytes) =>
        Assert.Equal(bytes, NextFlowRL.Torch.Memory.ResidentMemory.ParseStatusKilobytes(line));

    [Theory]
    [InlineData("VmRSS:")]
    [InlineData("VmRSS:\tkB")]
    [InlineData("no colon")]
    public void UnreadableLinesGiveNullNotAnException(string line) =>
        Assert.Null(NextFlowRL.Torch.Memory.ResidentMemory.ParseStatusKilobytes(line));

    [Fact]
    public void TheCurrentProcessHasAResidentSize() => Assert.True(NextFlowRL.Torch.Memory.ResidentMemory.Current() > 0);
}
