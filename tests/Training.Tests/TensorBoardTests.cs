using Xunit;
using NextFlowRL.Runs;

namespace NextFlowRL.Training.Tests;

/// <summary>The run folder's TensorBoard events (TorchSharp's SummaryWriter): valid TFRecord framing, every finite scalar per step.</summary>
public sealed class TensorBoardTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nf-tb-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void EveryFiniteScalarOfEveryStepIsAnEventTensorBoardCanRead()
    {
        using (var folder = new RunFolder(_dir))
        {
            folder.AppendMetrics(new Dictionary<string, double> { ["step"] = 1, ["reward_mean"] = 0.25, ["kl"] = double.NaN });
            folder.AppendMetrics(new Dictionary<string, double> { ["step"] = 2, ["reward_mean"] = 0.5, ["kl"] = 0.01 });
        }
        var file = Assert.Single(Directory.GetFiles(Path.Combine(_dir, "tensorboard"), "events.out.tfevents.*"));
        var scalars = new List<(long Step, string Tag, float Value)>();
        var bytes = File.ReadAllBytes(file);
        int at = 0, records = 0;
        while (at < bytes.Length)
        {
            // TFRecord: uint64 length, masked CRC of the length, payload, masked CRC of the payload.
            long length = BitConverter.ToInt64(bytes, at);
            Assert.True(length > 0 && at + 16 + length <= bytes.Length, $"record {records} is truncated");
            var e = Tensorboard.Event.Parser.ParseFrom(bytes, at + 12, (int)length);
            if (e.Summary is not null)
                scalars.AddRange(e.Summary.Value.Select(v => (e.Step, v.Tag, v.SimpleValue)));
            at += 16 + (int)length;
            records++;
        }
        Assert.Equal([(1L, "reward_mean", 0.25f), (2L, "kl", 0.01f), (2L, "reward_mean", 0.5f)],
            scalars.OrderBy(s => s.Step).ThenBy(s => s.Tag, StringComparer.Ordinal));
    }
}
