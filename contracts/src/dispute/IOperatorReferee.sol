// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @title IOperatorReferee
/// @notice Decides a game narrowed to one disputed link. Today an arbiter committee
///         re-executes the operator off-chain (ArbiterReferee); tomorrow a contract could
///         verify a single scalar step on-chain behind the same interface.
/// @dev The referee reads everything it needs from DisputeGame.getGame(gameId) and reports
///      back through DisputeGame.reportRuling(gameId, solverWon) or reportVoid(gameId).
interface IOperatorReferee {
    /// @notice The game `gameId` awaits a ruling on its single disputed link.
    /// @param gameId The game.
    function requestRuling(uint256 gameId) external;
}
