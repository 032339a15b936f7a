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
