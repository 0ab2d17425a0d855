"""What a trained run gives: whole-game play and videos (enjoy), plots, reports,
benchmark grids with their aggregates, the Atari-100k suite and the shipped agents."""
