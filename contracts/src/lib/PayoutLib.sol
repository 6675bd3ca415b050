// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @notice How a job's dispute money stands (JobMarket keeps one per job).
struct Payout {
    // bond shares the solver won; paid with its reward at finalize, forfeited if it is slashed
    uint256 heldForSolver;
    // the winners' pool of a slashed job: the stake's winner share plus the forfeited held shares
    uint256 rewardPool;
    // pool already paid out
    uint256 claimedAmount;
    // games that ended ChallengerWon on this job (each owns an equal part of the pool)
    uint32 winningGames;
    // winning games whose part was paid
    uint32 claimedGames;
    // times a void reopened the challenge window (at most JobMarket.MAX_REOPENINGS)
    uint32 reopenings;
}

/// @title PayoutLib
/// @notice The money rules of dispute outcomes, apart from the contract that holds the tokens:
///         the winner/burn split of a loser's stake or bond, the solver's bond winnings held
///         until its job finalizes, and the winners' pool of a slashed job shared equally by
///         every game that proved the result false (so a sybil of the cheater that wins first
///         takes one part, never the honest whistleblower's). Every function conserves: what it
///         takes in is exactly what it pays, holds or burns.
library PayoutLib {
    /// @notice Basis-point denominator.
    uint256 internal constant BPS = 10_000;

    /// @notice Split `amount` into the winner's share and the burned rest.
    /// @param amount The loser's stake or bond.
    /// @param winnerShareBps The winner's share in basis points (<= BPS).
    /// @return toWinner Rounded down, so the burn is never smaller than its fraction.
    /// @return burned amount - toWinner.
    function split(uint256 amount, uint256 winnerShareBps) internal pure returns (uint256 toWinner, uint256 burned) {
        toWinner = amount * winnerShareBps / BPS;
        burned = amount - toWinner;
    }

    /// @notice The solver won a game: hold its bond share until finalize.
    /// @param p The job's payout record.
    /// @param bond The losing challenger's bond.
    /// @param winnerShareBps The winner's share.
    /// @return burned What to burn now.
    function solverWon(Payout storage p, uint256 bond, uint256 winnerShareBps) internal returns (uint256 burned) {
        uint256 toSolver;
        (toSolver, burned) = split(bond, winnerShareBps);
        p.heldForSolver += toSolver;
    }

    /// @notice The first game that proved the result false: the stake's winner share plus
    ///         everything held for the solver becomes the winners' pool.
    /// @param p The job's payout record.
    /// @param stake The solver's stake.
    /// @param winnerShareBps The winner's share.
    /// @return pool The pool now shared by the winning games.
    /// @return burned What to burn now.
    function slash(Payout storage p, uint256 stake, uint256 winnerShareBps)
        internal
        returns (uint256 pool, uint256 burned)
    {
        uint256 toWinners;
        (toWinners, burned) = split(stake, winnerShareBps);
        // SAFETY: a proven cheater forfeits the bond shares it won before being slashed.
        pool = toWinners + p.heldForSolver;
        p.heldForSolver = 0;
        p.rewardPool = pool;
    }

    /// @notice Take the solver's held winnings at finalize.
    /// @param p The job's payout record.
    /// @return held What to pay the solver with its reward and stake.
    function release(Payout storage p) internal returns (uint256 held) {
        held = p.heldForSolver;
        p.heldForSolver = 0;
    }

    /// @notice Pay `games` winning games' parts of the pool. The last parts paid take the
    ///         rounding remainder, so the whole pool is paid once every winning game claimed.
    /// @param p The job's payout record (every game on the job has ended).
    /// @param games How many of the claimant's winning games are paid now.
    /// @return amount The claimant's share.
    function claim(Payout storage p, uint32 games) internal returns (uint256 amount) {
        amount = share(p.rewardPool, p.claimedAmount, p.winningGames, p.claimedGames, games);
        p.claimedGames += games;
        p.claimedAmount += amount;
    }

    /// @notice The share of `games` winning games when `claimedGames` of `winningGames` have
    ///         been paid `claimedAmount` of `pool`: games * pool / winningGames, except that the
    ///         claim reaching winningGames gets exactly what is left.
    /// @param pool The winners' pool.
    /// @param claimedAmount Paid so far.
    /// @param winningGames All winning games of the job (> 0 when games > 0).
    /// @param claimedGames Winning games paid so far.
    /// @param games Games being paid now (claimedGames + games <= winningGames).
    function share(uint256 pool, uint256 claimedAmount, uint32 winningGames, uint32 claimedGames, uint32 games)
        internal
        pure
        returns (uint256)
    {
        if (games == 0) return 0;
        if (uint256(claimedGames) + games == winningGames) return pool - claimedAmount;
        return pool * games / winningGames;
    }
}
