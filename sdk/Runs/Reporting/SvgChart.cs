using System.Globalization;
using System.Net;
using System.Text;
using NextFlowRL.Training;

namespace NextFlowRL.Runs.Reporting;

/// <summary>One line of a chart: points in data coordinates, a colour, a stroke width and an opacity.</summary>
public sealed record ChartSeries(string Label, IReadOnlyList<(double X, double Y)> Points, string Color, double Width = 1.6, double Opacity = 1.0);

/// <summary>
/// Small self-contained SVG line charts (axes, ticks, a legend) for the HTML run report: no script, no external
/// resource, so a report opens anywhere and a browser test can check it.
/// </summary>
public static class SvgChart
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>Colours for runs compared side by side (colour-blind friendly).</summary>
    public static IReadOnlyList<string> Palette { get; } = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#f0e442", "#000000"];

    /// <summary>Exponential moving average with the given weight of the past (TensorBoard's smoothing, debiased).</summary>
    public static IReadOnlyList<(double X, double Y)> Smooth(IReadOnlyList<(double X, double Y)> points, double weight)
    {
        ArgumentNullException.ThrowIfNull(points);
        if (weight is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(weight), "the smoothing weight must be in [0, 1)");
        var result = new List<(double, double)>(points.Count);
        double last = 0;
        for (int i = 0; i < points.Count; i++)
        {
            last = last * weight + (1 - weight) * points[i].Y;
            double debias = 1 - Math.Pow(weight, i + 1);
            result.Add((points[i].X, last / debias));
        }
        return result;
    }

    /// <summary>A line chart of the finite points of <paramref name="series"/>; a note instead when there are none.</summary>
    public static string Line(string title, IReadOnlyList<ChartSeries> series, int width = 360, int height = 220)
    {
        ArgumentNullException.ThrowIfNull(series);
        var finite = series.Select(s => s with { Points = s.Points.Where(p => double.IsFinite(p.X) && double.IsFinite(p.Y)).ToList() }).ToList();
        var all = finite.SelectMany(s => s.Points).ToList();
        var svg = new StringBuilder();
        svg.Append(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"{Esc(title)}\">");
        svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{width / 2}\" y=\"14\" text-anchor=\"middle\" class=\"title\">{Esc(title)}</text>");
        if (all.Count == 0)
        {
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{width / 2}\" y=\"{height / 2}\" text-anchor=\"middle\" class=\"note\">no finite values</text></svg>");
            return svg.ToString();
        }
        const double left = 52, right = 10, top = 22, bottom = 34;
        double x0 = all.Min(p => p.X), x1 = all.Max(p => p.X), y0 = all.Min(p => p.Y), y1 = all.Max(p => p.Y);
        if (x1 <= x0) { x0 -= 0.5; x1 += 0.5; }
        if (y1 <= y0) { double pad = Math.Abs(y0) > 0 ? Math.Abs(y0) * 0.05 : 0.5; y0 -= pad; y1 += pad; }
        double pw = width - left - right, ph = height - top - bottom;
        string X(double v) => (left + (v - x0) / (x1 - x0) * pw).ToString("0.#", Inv);
        string Y(double v) => (top + (1 - (v - y0) / (y1 - y0)) * ph).ToString("0.#", Inv);

        svg.Append(CultureInfo.InvariantCulture, $"<rect x=\"{left}\" y=\"{top}\" width=\"{pw}\" height=\"{ph}\" class=\"frame\"/>");
        foreach (var t in Ticks(y0, y1))
            svg.Append(CultureInfo.InvariantCulture, $"<line x1=\"{left}\" x2=\"{left + pw}\" y1=\"{Y(t)}\" y2=\"{Y(t)}\" class=\"grid\"/><text x=\"{left - 4}\" y=\"{Y(t)}\" text-anchor=\"end\" dominant-baseline=\"middle\" class=\"tick\">{Format(t)}</text>");
        foreach (var t in Ticks(x0, x1))
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{X(t)}\" y=\"{top + ph + 14}\" text-anchor=\"middle\" class=\"tick\">{Format(t)}</text>");
        svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{left + pw / 2}\" y=\"{height - 4}\" text-anchor=\"middle\" class=\"tick\">step</text>");
        foreach (var s in finite.Where(s => s.Points.Count > 0))
        {
            var pts = string.Join(" ", s.Points.Select(p => X(p.X) + "," + Y(p.Y)));
            svg.Append(CultureInfo.InvariantCulture, $"<polyline points=\"{pts}\" fill=\"none\" stroke=\"{s.Color}\" stroke-width=\"{s.Width.ToString(Inv)}\" stroke-opacity=\"{s.Opacity.ToString(Inv)}\"><title>{Esc(s.Label)}</title></polyline>");
            if (s.Points.Count == 1)
                svg.Append(CultureInfo.InvariantCulture, $"<circle cx=\"{X(s.Points[0].X)}\" cy=\"{Y(s.Points[0].Y)}\" r=\"2.5\" fill=\"{s.Color}\"/>");
        }
        svg.Append("</svg>");
        return svg.ToString();
    }

    /// <summary>A horizontal bar chart of labelled non-negative values (seconds per phase).</summary>
    public static string Bars(string title, IReadOnlyList<(string Label, double Value)> bars, string unit, int width = 520)
    {
        ArgumentNullException.ThrowIfNull(bars);
        int row = 18, top = 22, labelWidth = 190;
        int height = top + row * Math.Max(1, bars.Count) + 8;
        double max = bars.Count == 0 ? 1 : Math.Max(1e-12, bars.Max(b => double.IsFinite(b.Value) ? b.Value : 0));
        var svg = new StringBuilder();
        svg.Append(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"{Esc(title)}\">");
        svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{width / 2}\" y=\"14\" text-anchor=\"middle\" class=\"title\">{Esc(title)}</text>");
        for (int i = 0; i < bars.Count; i++)
        {
            double v = double.IsFinite(bars[i].Value) ? Math.Max(0, bars[i].Value) : 0;
            double w = (width - labelWidth - 70) * v / max;
            int y = top + i * row;
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{labelWidth - 6}\" y=\"{y + 12}\" text-anchor=\"end\" class=\"tick\">{Esc(bars[i].Label)}</text>");
            svg.Append(CultureInfo.InvariantCulture, $"<rect x=\"{labelWidth}\" y=\"{y + 3}\" width=\"{w.ToString("0.#", Inv)}\" height=\"{row - 6}\" fill=\"{Palette[0]}\"/>");
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{(labelWidth + w + 4).ToString("0.#", Inv)}\" y=\"{y + 12}\" class=\"tick\">{Format(v)} {Esc(unit)}</text>");
        }
        svg.Append("</svg>");
        return svg.ToString();
    }

    /// <summary>About five round tick values between <paramref name="low"/> and <paramref name="high"/>.</summary>
    public static IReadOnlyList<double> Ticks(double low, double high)
    {
        double span = high - low;
        if (!(span > 0) || !double.IsFinite(span)) return [low];
        double step = Math.Pow(10, Math.Floor(Math.Log10(span / 4)));
        foreach (var m in new[] { 1.0, 2.0, 2.5, 5.0, 10.0 })
            if (span / (step * m) <= 5) { step *= m; break; }
        // Ticks by index, not by repeated addition: where the span is tiny against the values (or denormal), t + step
        // can equal t, and an additive loop never ends.
        double first = Math.Ceiling(low / step) * step;
        var ticks = new List<double>();
        for (int i = 0; i <= 10; i++)
        {
            double t = first + i * step;
            if (t > high + step * 1e-9) break;
            if (ticks.Count > 0 && t <= ticks[^1]) break;
            ticks.Add(Math.Abs(t) < step * 1e-9 ? 0 : t);
        }
        return ticks.Count > 0 ? ticks : [low];
    }

    /// <summary>A number for a label: up to 4 significant digits, invariant culture.</summary>
    public static string Format(double v) =>
        !double.IsFinite(v) ? v.ToString(Inv) : Math.Abs(v) >= 1e5 || (v != 0 && Math.Abs(v) < 1e-3) ? v.ToString("0.##E+0", Inv) : v.ToString("0.####", Inv);

    private static string Esc(string s) => WebUtility.HtmlEncode(s);
}
