# Checkpoint trajectories (rdino-analyze with analyze.compare over reports of one run's
# checkpoints): one target's effect against the training step, a line with intervals per
# representation. Set by rdino-analyze: outfile, datafile (one block per representation,
# separated by two blank lines; columns: step, estimate, lo, hi), plot_title, metric_name,
# chance, and array labels[n] (the representations).
load plots_dir.'/style.gp'
set terminal pngcairo noenhanced size 900,600 font font_spec
set output outfile
set title plot_title
set xlabel 'training step (checkpoint)'
set ylabel metric_name
set key outside right top
set arrow from graph 0, first chance to graph 1, first chance nohead dt 2 lc rgb 'gray40'
plot for [i=1:|labels|] datafile index (i - 1) using 1:2:3:4 with yerrorlines lw 2 pt 7 title labels[i]
unset output
