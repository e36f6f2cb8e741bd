# Shared look of the report's plots, loaded first by every plot script here. rdino-analyze
# draws each plot by setting the variables a script names (outfile, datafile, ...) and loading
# the script; edit these files to restyle the report (analyze.plots_dir points at a copy).
font_spec = 'DejaVu Sans,11'
set grid xtics ytics lt 1 lw 1 lc rgb '#dddddd'
set border lc rgb '#555555'
